// SPDX-License-Identifier: Apache-2.0
#include "netns.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "args.h"
#include "errors.h"

namespace tenet {

Target ParseTarget(Napi::Env env, Napi::Object o, const std::string &fn)
{
	Target t;
	auto ifindex = OptU32(o, "ifindex", fn);
	auto ifname = OptString(o, "ifname", fn);
	auto netns = OptString(o, "netns", fn);
	if (ifindex && ifname)
		ThrowTypeError(env, fn + ": give ifindex or ifname, not both");
	if (!ifindex && !ifname)
		ThrowTypeError(env, fn + ": ifindex or ifname is required");
	if (ifindex) {
		if (*ifindex == 0 || *ifindex > INT32_MAX)
			ThrowTypeError(env, fn + ": ifindex must be a positive 32-bit integer");
		t.ifindex = static_cast<int>(*ifindex);
	}
	if (ifname) {
		if (ifname->empty() || ifname->size() >= IF_NAMESIZE)
			ThrowTypeError(env, fn + ": ifname must be 1.." +
						    std::to_string(IF_NAMESIZE - 1) + " characters");
		t.ifname = *ifname;
	}
	if (netns) {
		if (netns->empty())
			ThrowTypeError(env, fn + ": netns must be a non-empty path");
		t.netns = *netns;
	}
	return t;
}

NetnsGuard::NetnsGuard(Napi::Env env, const std::string &path)
{
	if (path.empty())
		return;
	// thread-self, not self: setns(CLONE_NEWNET) moves only the calling thread, and it is
	// this thread's namespace we must return to.
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		ThrowBpfError(env, "open", errno, {"/proc/thread-self/ns/net", {}, {}, {}});
	int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (target < 0) {
		int err = errno;
		close(self);
		ThrowBpfError(env, "open", err, {"netns " + path, {}, {}, {}});
	}
	if (setns(target, CLONE_NEWNET) < 0) {
		int err = errno;
		close(target);
		close(self);
		ThrowBpfError(env, "setns", err, {path, {}, {}, {}});
	}
	close(target);
	self_ = self;
}

NetnsGuard::~NetnsGuard()
{
	if (self_ < 0)
		return;
	if (setns(self_, CLONE_NEWNET) < 0) {
		fprintf(stderr, "tenet: cannot return to the original network namespace: %s\n",
			strerror(errno));
		abort();
	}
	close(self_);
}

int ResolveIfindex(Napi::Env env, const Target &t)
{
	if (t.ifindex > 0)
		return t.ifindex;
	errno = 0;
	unsigned idx = if_nametoindex(t.ifname.c_str());
	if (idx == 0) {
		int err = errno;
		// glibc reports a missing device as ENODEV; normalise the odd libc that leaves errno
		// unset so callers can rely on the code.
		if (err == 0)
			err = ENODEV;
		std::string where = t.netns.empty() ? "" : " in " + t.netns;
		ThrowBpfError(env, "if_nametoindex", err, {t.ifname + where, {}, {}, {}});
	}
	return static_cast<int>(idx);
}

Napi::Value IfNameToIndex(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	Napi::Object o = GetOptions(info, 0, "ifNameToIndex: target");
	Target t = ParseTarget(env, o, "ifNameToIndex");
	NetnsGuard ns(env, t.netns);
	return Napi::Number::New(env, ResolveIfindex(env, t));
}

} // namespace tenet
