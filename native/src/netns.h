// SPDX-License-Identifier: Apache-2.0
// Interfaces by name or index, optionally inside another network namespace. tenet manages ports
// in VM and lab namespaces without spawning helpers: the calling thread enters the namespace with
// setns(2), does the netlink/bpf call (sockets and ifindex lookups bind to the thread's current
// namespace), and always returns to where it was, also when the call throws.
#pragma once

#include <napi.h>

#include <string>

namespace tenet {

// { ifindex?: number; ifname?: string; netns?: string } — exactly one of ifindex/ifname.
struct Target {
	int ifindex = 0;
	std::string ifname;
	std::string netns; // path such as /run/netns/NAME; empty = the current namespace
};

Target ParseTarget(Napi::Env env, Napi::Object o, const std::string &fn);

// Enters `path` (if not empty) for its lifetime. Restoring the original namespace cannot fail in
// practice (we hold an fd to it); if it ever does, the process aborts rather than keep running JS
// on a thread silently stuck in a tenant's namespace.
class NetnsGuard {
public:
	NetnsGuard(Napi::Env env, const std::string &path);
	~NetnsGuard();
	NetnsGuard(const NetnsGuard &) = delete;
	NetnsGuard &operator=(const NetnsGuard &) = delete;

private:
	int self_ = -1;
};

// The target's ifindex in the current namespace (enter it first). A name that does not exist is
// BpfError ENODEV, op if_nametoindex.
int ResolveIfindex(Napi::Env env, const Target &t);

// JS: ifNameToIndex(target): number
Napi::Value IfNameToIndex(const Napi::CallbackInfo &info);

} // namespace tenet
