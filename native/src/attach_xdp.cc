// SPDX-License-Identifier: Apache-2.0
// XDP attachment. Two ways, both needed: netlink (bpf_xdp_attach) is what every kernel and tool
// understands and supports atomic replace via an expected old program; a BPF link
// (bpf_link_create BPF_XDP) can be pinned so the attachment outlives the agent process and cannot
// be clobbered by another netlink writer.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

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

// 'native' | 'generic' | 'auto' (default) to XDP_FLAGS_*. 'auto' lets the kernel choose: driver
// mode where the driver supports XDP, else generic.
static uint32_t ModeFlags(Napi::Env env, Napi::Object o, const std::string &fn)
{
	auto mode = OptString(o, "mode", fn);
	if (!mode || *mode == "auto")
		return 0;
	if (*mode == "native")
		return XDP_FLAGS_DRV_MODE;
	if (*mode == "generic")
		return XDP_FLAGS_SKB_MODE;
	ThrowTypeError(env, fn + ": mode must be 'native', 'generic' or 'auto'");
}

static ErrorDetails WithLibbpf(const LibbpfCapture &capture)
{
	ErrorDetails d;
	// libbpf prints the kernel's netlink extack ("Kernel error message: ..."), which is often
	// the only explanation of an EINVAL or EBUSY.
	d.detail = capture.Summary();
	if (!capture.text().empty())
		d.libbpfLog = capture.text();
	return d;
}

Napi::Value XdpAttach(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "xdpAttach";
	Napi::Object o = GetOptions(info, 0, fn + ": options");
	Target t = ParseTarget(env, o, fn);
	int progFd = BpfProgram::FromValue(env, o.Get("prog"), fn + ": prog")->FdOrThrow(env, "xdpAttach");
	uint32_t flags = ModeFlags(env, o, fn);
	if (OptBool(o, "exclusive", fn).value_or(false))
		// Fail with EBUSY rather than replace whatever program is attached.
		flags |= XDP_FLAGS_UPDATE_IF_NOEXIST;
	bpf_xdp_attach_opts opts;
	InitOpts(opts);
	Napi::Value replace = OptValue(o, "replace");
	if (!replace.IsEmpty())
		// libbpf adds XDP_FLAGS_REPLACE: the kernel swaps only if `replace` is attached.
		opts.old_prog_fd = BpfProgram::FromValue(env, replace, fn + ": replace")
					   ->FdOrThrow(env, "xdpAttach");

	NetnsGuard ns(env, t.netns);
	int ifindex = ResolveIfindex(env, t);
	LibbpfCapture capture;
	if (bpf_xdp_attach(ifindex, progFd, flags, &opts) < 0) {
		int err = errno;
		ThrowBpfError(env, "bpf_xdp_attach", err, WithLibbpf(capture));
	}
	return env.Undefined();
}

Napi::Value XdpDetach(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "xdpDetach";
	Napi::Object o = GetOptions(info, 0, fn + ": options");
	Target t = ParseTarget(env, o, fn);
	uint32_t flags = ModeFlags(env, o, fn);
	bpf_xdp_attach_opts opts;
	InitOpts(opts);
	Napi::Value expected = OptValue(o, "expected");
	if (!expected.IsEmpty())
		// Detach only if `expected` is still the attached program (someone else's newer
		// program stays).
		opts.old_prog_fd = BpfProgram::FromValue(env, expected, fn + ": expected")
					   ->FdOrThrow(env, "xdpDetach");

	NetnsGuard ns(env, t.netns);
	int ifindex = ResolveIfindex(env, t);
	LibbpfCapture capture;
	if (bpf_xdp_detach(ifindex, flags, &opts) < 0) {
		int err = errno;
		ThrowBpfError(env, "bpf_xdp_detach", err, WithLibbpf(capture));
	}
	return env.Undefined();
}

Napi::Value XdpQuery(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "xdpQuery";
	Napi::Object o = GetOptions(info, 0, fn + ": target");
	Target t = ParseTarget(env, o, fn);

	NetnsGuard ns(env, t.netns);
	int ifindex = ResolveIfindex(env, t);
	bpf_xdp_query_opts q;
	InitOpts(q);
	LibbpfCapture capture;
	if (bpf_xdp_query(ifindex, 0, &q) < 0) {
		int err = errno;
		ThrowBpfError(env, "bpf_xdp_query", err, WithLibbpf(capture));
	}

	const char *mode = "none";
	uint32_t progId = q.prog_id;
	switch (q.attach_mode) {
	case XDP_ATTACHED_DRV:
		mode = "native";
		break;
	case XDP_ATTACHED_SKB:
		mode = "generic";
		break;
	case XDP_ATTACHED_HW:
		mode = "offload";
		break;
	case XDP_ATTACHED_MULTI:
		// Only possible with a hardware-offloaded program next to a driver/generic one;
		// report the host-side program, which is the one tenet manages.
		mode = q.drv_prog_id ? "native" : q.skb_prog_id ? "generic" : "offload";
		progId = q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id ? q.skb_prog_id : q.hw_prog_id;
		break;
	default:
		break;
	}
	Napi::Object out = Napi::Object::New(env);
	out.Set("progId", progId);
	out.Set("mode", mode);
	out.Set("ifindex", ifindex);
	return out;
}

Napi::Value XdpLinkAttach(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "xdpLinkAttach";
	int progFd = BpfProgram::FromValue(env, info[0], fn + ": prog")->FdOrThrow(env, "xdpLinkAttach");
	Napi::Object o = GetOptions(info, 1, fn + ": options");
	Target t = ParseTarget(env, o, fn);
	bpf_link_create_opts opts;
	InitOpts(opts);
	opts.flags = ModeFlags(env, o, fn);

	NetnsGuard ns(env, t.netns);
	int ifindex = ResolveIfindex(env, t);
	LibbpfCapture capture;
	UniqueFd fd(bpf_link_create(progFd, ifindex, BPF_XDP, &opts));
	if (!fd.valid()) {
		int err = errno;
		ThrowBpfError(env, "bpf_link_create", err, WithLibbpf(capture));
	}
	return BpfLink::Adopt(env, std::move(fd));
}

} // namespace tenet
