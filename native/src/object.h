// SPDX-License-Identifier: Apache-2.0
// BpfObject: a libbpf bpf_object opened from an ELF file. Opening is synchronous (ELF parsing);
// loading runs in a libuv worker because the verifier may take long for big programs, and a
// rejected load carries the verifier log. Maps and programs are handed out as independent handles
// with their own fds, so closing the object does not invalidate them.
#pragma once

#include <bpf/libbpf.h>
#include <napi.h>

#include <string>
#include <vector>

#include "registry.h"

namespace tenet {

class BpfObject : public Napi::ObjectWrap<BpfObject>, public Handle {
public:
	static Napi::Function Define(Napi::Env env);
	explicit BpfObject(const Napi::CallbackInfo &info);
	~BpfObject() override;

	void Release(bool teardown) noexcept override;

private:
	friend class LoadWorker;

	struct Init {
		bpf_object *obj;
		std::vector<char> logBuf;
		std::string path;
	};
	static thread_local Init *pending_;

	static Napi::Value Open(const Napi::CallbackInfo &info);

	Napi::Value Load(const Napi::CallbackInfo &info);
	Napi::Value MapNames(const Napi::CallbackInfo &info);
	Napi::Value ProgramNames(const Napi::CallbackInfo &info);
	Napi::Value Map(const Napi::CallbackInfo &info);
	Napi::Value Program(const Napi::CallbackInfo &info);
	Napi::Value InitialValue(const Napi::CallbackInfo &info);
	Napi::Value WriteInitialValue(const Napi::CallbackInfo &info);
	Napi::Value SetMaxEntries(const Napi::CallbackInfo &info);
	Napi::Value Close(const Napi::CallbackInfo &info);
	Napi::Value GetLoaded(const Napi::CallbackInfo &info);
	Napi::Value GetClosed(const Napi::CallbackInfo &info);
	Napi::Value GetPath(const Napi::CallbackInfo &info);

	// The object, or BpfError EBADF naming `method` after close(); EBUSY while loading.
	bpf_object *ObjOrThrow(Napi::Env env, const char *method) const;
	// Called on the JS thread when the load worker finishes.
	void LoadFinished(bool ok);

	bpf_object *obj_ = nullptr;
	// Verifier log of the last program load, handed to libbpf as kernel_log_buf: it must stay
	// allocated from open until load returns.
	std::vector<char> logBuf_;
	std::string path_;
	bool loading_ = false;
	bool loadAttempted_ = false;
	bool loaded_ = false;
	bool closeRequested_ = false;
};

} // namespace tenet
