// SPDX-License-Identifier: Apache-2.0
// What BpfMap, BpfProgram and BpfLink share: one owned BPF fd with idempotent close, EBADF on use
// after close, pinning, and checks that an fd obtained from a pin is the kind of object expected.
#pragma once

#include <napi.h>

#include <string>

#include "registry.h"
#include "unique_fd.h"

namespace tenet {

// Kinds of BPF fds, as the kernel names their anonymous inodes.
enum class BpfFdKind { Map, Prog, Link };

class FdHandle : public Handle {
public:
	FdHandle(Napi::Env env, UniqueFd fd) : Handle(env), fd_(std::move(fd)) {}

	// The fd, or a BpfError EBADF naming `method` if the handle was closed.
	int FdOrThrow(Napi::Env env, const char *method) const
	{
		if (!fd_.valid())
			ThrowClosedFor(env, method);
		return fd_.get();
	}
	bool IsClosed() const { return !fd_.valid(); }

	void Release(bool teardown) noexcept override
	{
		fd_.reset();
		Unregister();
	}

protected:
	// bpf_obj_pin of this handle's fd; `method` names the JS method for EBADF.
	void PinTo(Napi::Env env, const Napi::Value &path, const char *method);

	UniqueFd fd_;

private:
	[[noreturn]] static void ThrowClosedFor(Napi::Env env, const char *method);
};

// bpf_obj_get(path) checked to be of `kind`: a program pin opened as a map would otherwise be
// silently misread by every later call. Throws BpfError (op bpf_obj_get) on failure.
UniqueFd OpenPinnedFd(Napi::Env env, const std::string &path, BpfFdKind kind);

// Throws BpfError EINVAL (op `op`) unless fd is of `kind`.
void CheckFdKind(Napi::Env env, int fd, BpfFdKind kind, const std::string &op,
		 const std::string &what);

// unlink(2) of a pin; a missing pin is ENOENT (op "unlink").
void UnpinPath(Napi::Env env, const std::string &path);

} // namespace tenet
