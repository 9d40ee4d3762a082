// SPDX-License-Identifier: Apache-2.0
// BpfMap: one BPF map fd and the synchronous element operations on it. Sizes are taken from the
// kernel's view of the map (bpf_map_info) when the handle is created, so every key and value
// buffer is checked before the syscall and per-CPU values are sized for all possible CPUs.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

#include "fd_handle.h"

namespace tenet {

struct MapMeta {
	uint32_t type = 0;
	uint32_t keySize = 0;
	uint32_t valueSize = 0;
	uint32_t maxEntries = 0;
	uint32_t flags = 0;
	// Bytes of one value as user space passes it: valueSize, or for per-CPU maps
	// numPossibleCpus * round_up(valueSize, 8).
	size_t valueBufSize = 0;
	bool perCpu = false;
};

class BpfMap : public Napi::ObjectWrap<BpfMap>, public FdHandle {
public:
	static Napi::Function Define(Napi::Env env);

	// Wraps an owned map fd in a new JS BpfMap. Throws BpfError if the kernel cannot describe it.
	static Napi::Object Adopt(Napi::Env env, UniqueFd fd);

	// The BpfMap behind a JS value; TypeError naming `what` if it is not one.
	static BpfMap *FromValue(Napi::Env env, const Napi::Value &v, const std::string &what);

	explicit BpfMap(const Napi::CallbackInfo &info);

	const MapMeta &meta() const { return meta_; }

private:
	struct Init {
		UniqueFd fd;
		MapMeta meta;
	};
	// Set by Adopt() around the JS constructor call: JS cannot construct a BpfMap itself.
	static thread_local Init *pending_;

	// Static factories.
	static Napi::Value OpenPinned(const Napi::CallbackInfo &info);
	static Napi::Value FromId(const Napi::CallbackInfo &info);
	static Napi::Value Create(const Napi::CallbackInfo &info);
	static Napi::Value Unpin(const Napi::CallbackInfo &info);

	Napi::Value GetFd(const Napi::CallbackInfo &info);
	Napi::Value GetClosed(const Napi::CallbackInfo &info);
	Napi::Value GetType(const Napi::CallbackInfo &info);
	Napi::Value GetKeySize(const Napi::CallbackInfo &info);
	Napi::Value GetValueSize(const Napi::CallbackInfo &info);
	Napi::Value GetValueBufferSize(const Napi::CallbackInfo &info);
	Napi::Value GetMaxEntries(const Napi::CallbackInfo &info);

	Napi::Value Info(const Napi::CallbackInfo &info);
	Napi::Value Lookup(const Napi::CallbackInfo &info);
	Napi::Value Update(const Napi::CallbackInfo &info);
	Napi::Value Delete(const Napi::CallbackInfo &info);
	Napi::Value NextKey(const Napi::CallbackInfo &info);
	Napi::Value LookupBatch(const Napi::CallbackInfo &info);
	Napi::Value UpdateBatch(const Napi::CallbackInfo &info);
	Napi::Value DeleteBatch(const Napi::CallbackInfo &info);
	Napi::Value Pin(const Napi::CallbackInfo &info);
	Napi::Value Close(const Napi::CallbackInfo &info);

	// Key pointer for element calls; null for key-less maps (queue, stack).
	const void *KeyArg(Napi::Env env, const Napi::Value &v, const char *method) const;

	MapMeta meta_;
};

} // namespace tenet
