// SPDX-License-Identifier: Apache-2.0
#include "fd_handle.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "args.h"
#include "errors.h"

namespace tenet {

UniqueFd DupFd(int fd) { return UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

void FdHandle::ThrowClosedFor(Napi::Env env, const char *method) { ThrowClosed(env, method); }

void FdHandle::PinTo(Napi::Env env, const Napi::Value &pathValue, const char *method)
{
	std::string path = GetString(env, pathValue, std::string(method) + ": path");
	int fd = FdOrThrow(env, method);
	if (bpf_obj_pin(fd, path.c_str()) < 0)
		ThrowBpfError(env, "bpf_obj_pin", errno, {path, {}, {}, {}});
}

// Names given to the anonymous inodes in kernel/bpf/syscall.c. Links were "bpf_link" until the
// kernel renamed them "bpf-link" (6.18 reports the latter); accept both.
static bool KindMatches(BpfFdKind kind, const char *target)
{
	switch (kind) {
	case BpfFdKind::Map:
		return strcmp(target, "anon_inode:bpf-map") == 0;
	case BpfFdKind::Prog:
		return strcmp(target, "anon_inode:bpf-prog") == 0;
	case BpfFdKind::Link:
		return strcmp(target, "anon_inode:bpf-link") == 0 ||
		       strcmp(target, "anon_inode:bpf_link") == 0;
	}
	return false;
}

static const char *KindName(BpfFdKind kind)
{
	switch (kind) {
	case BpfFdKind::Map:
		return "map";
	case BpfFdKind::Prog:
		return "program";
	case BpfFdKind::Link:
		return "link";
	}
	return "";
}

void CheckFdKind(Napi::Env env, int fd, BpfFdKind kind, const std::string &op,
		 const std::string &what)
{
	// The kernel gives no "type of this fd" query; the anonymous inode name behind
	// /proc/self/fd is the cheapest reliable answer.
	char link[64];
	char target[64] = {0};
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		ThrowBpfError(env, "readlink", errno, {link, {}, {}, {}});
	target[n] = '\0';
	if (!KindMatches(kind, target))
		ThrowBpfError(env, op, EINVAL,
			      {what + " is not a BPF " + KindName(kind) + " (" + target + ")", {}, {}, {}});
}

UniqueFd OpenPinnedFd(Napi::Env env, const std::string &path, BpfFdKind kind)
{
	UniqueFd fd(bpf_obj_get(path.c_str()));
	if (!fd.valid())
		ThrowBpfError(env, "bpf_obj_get", errno, {path, {}, {}, {}});
	CheckFdKind(env, fd.get(), kind, "bpf_obj_get", path);
	return fd;
}

void UnpinPath(Napi::Env env, const std::string &path)
{
	if (unlink(path.c_str()) < 0)
		ThrowBpfError(env, "unlink", errno, {path, {}, {}, {}});
}

} // namespace tenet
