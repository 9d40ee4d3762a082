// SPDX-License-Identifier: Apache-2.0
// BpfLink: a BPF link fd (XDP link, tcx link, ...). Links are how tenet attaches programs so that
// the attachment survives the agent: pin the link, exit, and a restarted agent adopts it from the
// pin and swaps programs atomically with update().
#pragma once

#include <napi.h>

#include <string>

#include "fd_handle.h"

namespace tenet {

class BpfLink : public Napi::ObjectWrap<BpfLink>, public FdHandle {
public:
	static Napi::Function Define(Napi::Env env);

	// Wraps an owned link fd in a new JS BpfLink.
	static Napi::Object Adopt(Napi::Env env, UniqueFd fd);

	explicit BpfLink(const Napi::CallbackInfo &info);

private:
	static thread_local UniqueFd *pending_;

	static Napi::Value OpenPinned(const Napi::CallbackInfo &info);
	static Napi::Value FromId(const Napi::CallbackInfo &info);
	static Napi::Value Unpin(const Napi::CallbackInfo &info);

	Napi::Value GetFd(const Napi::CallbackInfo &info);
	Napi::Value GetClosed(const Napi::CallbackInfo &info);
	Napi::Value Info(const Napi::CallbackInfo &info);
	Napi::Value Pin(const Napi::CallbackInfo &info);
	Napi::Value Update(const Napi::CallbackInfo &info);
	Napi::Value Detach(const Napi::CallbackInfo &info);
	Napi::Value Close(const Napi::CallbackInfo &info);
};

} // namespace tenet
