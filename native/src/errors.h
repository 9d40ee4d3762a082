// SPDX-License-Identifier: Apache-2.0
// Turning failures into JS exceptions. Every libbpf or syscall failure becomes the BpfError class
// the TS layer registered (setErrorClass), carrying the errno name, number and the failing
// operation; misuse from JS (wrong types, wrong buffer sizes) is a plain TypeError.
#pragma once

#include <napi.h>

#include <cstdint>
#include <optional>
#include <string>

namespace tenet {

// Facts some failures carry beyond (op, errno). Unset fields are not set on the JS error.
struct ErrorDetails {
	std::string detail;                    // context for the message: a path, a map name...
	std::optional<std::string> log;        // kernel verifier log of a failed program load
	std::optional<std::string> libbpfLog;  // libbpf's own messages printed during the call
	std::optional<uint32_t> processed;     // batch operations: elements done before the failure
};

// "ENOENT" for ENOENT; "E<number>" for values glibc has no name for.
std::string ErrnoName(int err);

// A BpfError (or a plain Error carrying the same fields when no class was registered) for the
// positive errno `err` raised by `op`. Does not throw: load() uses it to reject a promise.
Napi::Error MakeBpfError(Napi::Env env, const std::string &op, int err,
			 const ErrorDetails &details = {});

[[noreturn]] void ThrowBpfError(Napi::Env env, const std::string &op, int err,
				const ErrorDetails &details = {});

[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string &message);

// Use of a handle after close(): BpfError EBADF whose op names the method, e.g. "BpfMap.lookup".
[[noreturn]] void ThrowClosed(Napi::Env env, const char *method);

} // namespace tenet
