// SPDX-License-Identifier: Apache-2.0
// BpfProgram: one loaded program's fd. Besides pinning and introspection it runs the program on a
// caller-supplied packet (BPF_PROG_TEST_RUN), which is how datapath tests exercise XDP and tc
// code without any network.
#pragma once

#include <napi.h>

#include <string>

#include "fd_handle.h"

namespace tenet {

class BpfProgram : public Napi::ObjectWrap<BpfProgram>, public FdHandle {
public:
	static Napi::Function Define(Napi::Env env);

	// Wraps an owned program fd in a new JS BpfProgram.
	static Napi::Object Adopt(Napi::Env env, UniqueFd fd);

	// The BpfProgram behind a JS value; TypeError naming `what` if it is not one.
	static BpfProgram *FromValue(Napi::Env env, const Napi::Value &v, const std::string &what);

	explicit BpfProgram(const Napi::CallbackInfo &info);

private:
	static thread_local UniqueFd *pending_;

	static Napi::Value OpenPinned(const Napi::CallbackInfo &info);
	static Napi::Value FromId(const Napi::CallbackInfo &info);

	Napi::Value GetFd(const Napi::CallbackInfo &info);
	Napi::Value GetClosed(const Napi::CallbackInfo &info);
	Napi::Value Info(const Napi::CallbackInfo &info);
	Napi::Value Pin(const Napi::CallbackInfo &info);
	Napi::Value Close(const Napi::CallbackInfo &info);
	Napi::Value TestRun(const Napi::CallbackInfo &info);
};

} // namespace tenet
