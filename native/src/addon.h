// SPDX-License-Identifier: Apache-2.0
// Per-environment state of the addon: the registered BpfError class, the JS constructors of the
// handle classes (so native code can create handles), and the registry of live handles. Keeping
// it per environment (napi instance data) makes the addon safe to load in worker threads.
#pragma once

#include <napi.h>

#include <memory>

#include "registry.h"

namespace tenet {

struct AddonData {
	Napi::FunctionReference errorCtor;
	Napi::FunctionReference objectCtor;
	Napi::FunctionReference mapCtor;
	Napi::FunctionReference programCtor;
	Napi::FunctionReference linkCtor;
	Napi::FunctionReference ringBufferCtor;
	std::shared_ptr<Registry> registry = std::make_shared<Registry>();

	static AddonData &Get(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }
};

} // namespace tenet
