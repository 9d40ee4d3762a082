// SPDX-License-Identifier: Apache-2.0
// Module entry: registers the classes and functions described by native/index.d.ts, creates the
// per-environment state and the cleanup hook that releases every kernel resource at teardown.
#include "addon.h"

#include <bpf/libbpf.h>

#include "args.h"
#include "attach.h"
#include "errors.h"
#include "libbpf_log.h"
#include "link.h"
#include "map.h"
#include "netns.h"
#include "object.h"
#include "program.h"
#include "ringbuf.h"
#include "unix.h"

namespace tenet {

static Napi::Value SetErrorClass(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (!info[0].IsFunction())
		ThrowTypeError(env, "setErrorClass: ctor must be a class (constructor function)");
	AddonData::Get(env).errorCtor = Napi::Persistent(info[0].As<Napi::Function>());
	return env.Undefined();
}

static Napi::Value LibbpfVersion(const Napi::CallbackInfo &info)
{
	return Napi::String::New(info.Env(), libbpf_version_string());
}

static Napi::Value NumPossibleCpus(const Napi::CallbackInfo &info)
{
	int n = libbpf_num_possible_cpus();
	if (n < 0)
		ThrowBpfError(info.Env(), "libbpf_num_possible_cpus", -n);
	return Napi::Number::New(info.Env(), n);
}

// Test aid: how many native handles currently hold kernel resources in this environment.
static Napi::Value LiveHandles(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(),
				 static_cast<double>(AddonData::Get(info.Env()).registry->size()));
}

static void Cleanup(void *arg)
{
	auto *registry = static_cast<std::shared_ptr<Registry> *>(arg);
	(*registry)->ReleaseAll();
	delete registry;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	InstallLibbpfPrint();

	auto *data = new AddonData();
	env.SetInstanceData(data);
	napi_add_env_cleanup_hook(env, Cleanup, new std::shared_ptr<Registry>(data->registry));

	Napi::Function objectCtor = BpfObject::Define(env);
	Napi::Function mapCtor = BpfMap::Define(env);
	Napi::Function programCtor = BpfProgram::Define(env);
	Napi::Function linkCtor = BpfLink::Define(env);
	Napi::Function ringBufferCtor = RingBuffer::Define(env);
	data->objectCtor = Napi::Persistent(objectCtor);
	data->mapCtor = Napi::Persistent(mapCtor);
	data->programCtor = Napi::Persistent(programCtor);
	data->linkCtor = Napi::Persistent(linkCtor);
	data->ringBufferCtor = Napi::Persistent(ringBufferCtor);

	exports.Set("BpfObject", objectCtor);
	exports.Set("BpfMap", mapCtor);
	exports.Set("BpfProgram", programCtor);
	exports.Set("BpfLink", linkCtor);
	exports.Set("RingBuffer", ringBufferCtor);

	exports.Set("setErrorClass", Napi::Function::New<SetErrorClass>(env, "setErrorClass"));
	exports.Set("libbpfVersion", Napi::Function::New<LibbpfVersion>(env, "libbpfVersion"));
	exports.Set("numPossibleCpus", Napi::Function::New<NumPossibleCpus>(env, "numPossibleCpus"));
	exports.Set("liveHandles", Napi::Function::New<LiveHandles>(env, "liveHandles"));
	exports.Set("ifNameToIndex", Napi::Function::New<IfNameToIndex>(env, "ifNameToIndex"));
	exports.Set("xdpAttach", Napi::Function::New<XdpAttach>(env, "xdpAttach"));
	exports.Set("xdpDetach", Napi::Function::New<XdpDetach>(env, "xdpDetach"));
	exports.Set("xdpQuery", Napi::Function::New<XdpQuery>(env, "xdpQuery"));
	exports.Set("xdpLinkAttach", Napi::Function::New<XdpLinkAttach>(env, "xdpLinkAttach"));
	exports.Set("tcAttach", Napi::Function::New<TcAttach>(env, "tcAttach"));
	exports.Set("tcDetach", Napi::Function::New<TcDetach>(env, "tcDetach"));
	exports.Set("tcQuery", Napi::Function::New<TcQuery>(env, "tcQuery"));
	exports.Set("tcHookDestroy", Napi::Function::New<TcHookDestroy>(env, "tcHookDestroy"));
	exports.Set("tcxLinkAttach", Napi::Function::New<TcxLinkAttach>(env, "tcxLinkAttach"));
	exports.Set("peerCredentials", Napi::Function::New<PeerCredentials>(env, "peerCredentials"));
	exports.Set("sdNotify", Napi::Function::New<SdNotify>(env, "sdNotify"));
	return exports;
}

} // namespace tenet

// NODE_API_MODULE pastes the init function's name into identifiers: it must be unqualified.
static Napi::Object InitTenetNative(Napi::Env env, Napi::Object exports)
{
	return tenet::Init(env, exports);
}

NODE_API_MODULE(tenet_native, InitTenetNative)
