// SPDX-License-Identifier: Apache-2.0
// tc attachment. Netlink cls_bpf filters on a clsact qdisc (bpf_tc_*) work on every kernel tenet
// targets; tcx links (kernel >= 6.6) are the modern path: no qdisc, ordered multi-attach, and a
// pinnable link that survives the agent. The TS layer prefers tcx and falls back to netlink when
// the kernel rejects the tcx attach type.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <string>

#include "args.h"
#include "attach.h"
#include "errors.h"
#include "libbpf_log.h"
#include "libbpf_opts.h"
#include "link.h"
#include "netns.h"
#include "program.h"

namespace tenet {

// enum bpf_attach_type values for tcx, added in kernel 6.6. libbpf 1.1 and the 6.1 uapi headers
// we build against predate them; the kernel ABI never renumbers, so spelling them here is safe.
static constexpr int kBpfTcxIngress = 46;
static constexpr int kBpfTcxEgress = 47;

enum class Direction { Ingress, Egress };

static Direction ParseDirection(Napi::Env env, Napi::Object o, const std::string &fn)
{
	auto dir = OptString(o, "direction", fn);
	if (dir && *dir == "ingress")
		return Direction::Ingress;
	if (dir && *dir == "egress")
		return Direction::Egress;
	ThrowTypeError(env, fn + ": direction must be 'ingress' or 'egress'");
}

// Fills in place (see InitOpts: the padding must stay zero).
static void InitHook(bpf_tc_hook &hook, int ifindex, Direction dir)
{
	InitOpts(hook);
	hook.ifindex = ifindex;
	hook.attach_point = dir == Direction::Ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

static ErrorDetails WithLibbpf(const LibbpfCapture &capture)
{
	ErrorDetails d;
	d.detail = capture.Summary();
	if (!capture.text().empty())
		d.libbpfLog = capture.text();
	return d;
}

// handle/priority identify a cls_bpf filter; priority is 16 bits in the tc ABI.
static uint32_t ParsePriority(Napi::Env env, Napi::Object o, const std::string &fn, bool required)
{
	auto prio = OptU32(o, "priority", fn);
	if (!prio) {
		if (required)
			ThrowTypeError(env, fn + ": priority is required");
		return 0;
	}
	if (*prio > 0xffff || (required && *prio == 0))
		ThrowTypeError(env, fn + ": priority must be in [1, 65535]");
	return *prio;
}

static uint32_t ParseHandle(Napi::Env env, Napi::Object o, const std::string &fn, bool required)
{
	auto handle = OptU32(o, "handle", fn);
	if (!handle) {
		if (required)
			ThrowTypeError(env, fn + ": handle is required");
		return 0;
	}
	if (required && *handle == 0)
		ThrowTypeError(env, fn + ": handle must be non-zero");
	return *handle;
}

Napi::Value TcAttach(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "tcAttach";
	Napi::Object o = GetOptions(info, 0, fn + ": options");
	Target t = ParseTarget(env, o, fn);
	Direction dir = ParseDirection(env, o, fn);
	int progFd = BpfProgram::FromValue(env, o.Get("prog"), fn + ": prog")->FdOrThrow(env, "tcAttach");
	bpf_tc_opts opts;
	InitOpts(opts);
	opts.prog_fd = progFd;
	opts.handle = ParseHandle(env, o, fn, false);
	opts.priority = ParsePriority(env, o, fn, false);
	if (OptBool(o, "replace", fn).value_or(false)) {
		if (!opts.handle || !opts.priority)
			ThrowTypeError(env, fn + ": replace needs handle and priority");
		opts.flags = BPF_TC_F_REPLACE;
	}

	NetnsGuard ns(env, t.netns);
	int ifindex = ResolveIfindex(env, t);
	bpf_tc_hook hook;
	InitHook(hook, ifindex, dir);
	LibbpfCapture capture;
	// The clsact qdisc is shared by ingress and egress and by every filter on the device:
	// create it if missing, reuse it if present.
	if (bpf_tc_hook_create(&hook) < 0 && errno != EEXIST) {
		int err = errno;
		ThrowBpfError(env, "bpf_tc_hook_create", err, WithLibbpf(capture));
	}
	if (bpf_tc_attach(&hook, &opts) < 0) {
		int err = errno;
		ThrowBpfError(env, "bpf_tc_attach", err, WithLibbpf(capture));
	}
	Napi::Object out = Napi::Object::New(env);
	out.Set("handle", opts.handle);
	out.Set("priority", opts.priority);
	out.Set("progId", opts.prog_id);
	out.Set("ifindex", ifindex);
	return out;
}

Napi::Value TcDetach(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "tcDetach";
	Napi::Object o = GetOptions(info, 0, fn + ": options");
	Target t = ParseTarget(env, o, fn);
	Direction dir = ParseDirection(env, o, fn);
	bpf_tc_opts opts;
	InitOpts(opts);
	opts.handle = ParseHandle(env, o, fn, true);
	opts.priority = ParsePriority(env, o, fn, true);

	NetnsGuard ns(env, t.netns);
	int ifindex = ResolveIfindex(env, t);
	bpf_tc_hook hook;
	InitHook(hook, ifindex, dir);
	LibbpfCapture capture;
	if (bpf_tc_detach(&hook, &opts) < 0) {
		int err = errno;
		ThrowBpfError(env, "bpf_tc_detach", err, WithLibbpf(capture));
	}
	return env.Undefined();
}

Napi::Value TcQuery(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "tcQuery";
	Napi::Object o = GetOptions(info, 0, fn + ": options");
	Target t = ParseTarget(env, o, fn);
	Direction dir = ParseDirection(env, o, fn);
	bpf_tc_opts opts;
	InitOpts(opts);
	opts.handle = ParseHandle(env, o, fn, true);
	opts.priority = ParsePriority(env, o, fn, true);

	NetnsGuard ns(env, t.netns);
	int ifindex = ResolveIfindex(env, t);
	bpf_tc_hook hook;
	InitHook(hook, ifindex, dir);
	LibbpfCapture capture;
	if (bpf_tc_query(&hook, &opts) < 0) {
		int err = errno;
		// No such filter. Without a clsact qdisc at all the kernel answers EINVAL ("parent
		// qdisc doesn't exist"), which for a query means the same thing.
		if (err == ENOENT || err == EINVAL)
			return env.Null();
		ThrowBpfError(env, "bpf_tc_query", err, WithLibbpf(capture));
	}
	Napi::Object out = Napi::Object::New(env);
	out.Set("progId", opts.prog_id);
	return out;
}

Napi::Value TcHookDestroy(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "tcHookDestroy";
	Napi::Object o = GetOptions(info, 0, fn + ": target");
	Target t = ParseTarget(env, o, fn);

	NetnsGuard ns(env, t.netns);
	int ifindex = ResolveIfindex(env, t);
	bpf_tc_hook hook;
	InitOpts(hook);
	hook.ifindex = ifindex;
	// Both points together name the clsact qdisc itself: deleting it drops every filter on it.
	hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
	LibbpfCapture capture;
	if (bpf_tc_hook_destroy(&hook) < 0) {
		int err = errno;
		// Nothing to destroy is not an error for a cleanup call.
		if (err == ENOENT || err == EINVAL)
			return Napi::Boolean::New(env, false);
		ThrowBpfError(env, "bpf_tc_hook_destroy", err, WithLibbpf(capture));
	}
	return Napi::Boolean::New(env, true);
}

Napi::Value TcxLinkAttach(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "tcxLinkAttach";
	int progFd = BpfProgram::FromValue(env, info[0], fn + ": prog")->FdOrThrow(env, "tcxLinkAttach");
	Napi::Object o = GetOptions(info, 1, fn + ": options");
	Target t = ParseTarget(env, o, fn);
	Direction dir = ParseDirection(env, o, fn);
	int attachType = dir == Direction::Ingress ? kBpfTcxIngress : kBpfTcxEgress;

	NetnsGuard ns(env, t.netns);
	int ifindex = ResolveIfindex(env, t);
	LibbpfCapture capture;
	// libbpf 1.1 forwards unknown attach types to BPF_LINK_CREATE unchanged; the tcx fields of
	// link_create (relative fd/id, expected revision) stay zero: append after existing programs.
	UniqueFd fd(bpf_link_create(progFd, ifindex, static_cast<bpf_attach_type>(attachType), nullptr));
	if (!fd.valid()) {
		int err = errno;
		// A kernel without tcx rejects the attach type with EINVAL: the caller falls back to
		// netlink tc on that code.
		ThrowBpfError(env, "bpf_link_create", err, WithLibbpf(capture));
	}
	return BpfLink::Adopt(env, std::move(fd));
}

} // namespace tenet
