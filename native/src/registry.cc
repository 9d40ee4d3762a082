// SPDX-License-Identifier: Apache-2.0
#include "registry.h"

#include <vector>

#include "addon.h"

namespace tenet {

void Registry::ReleaseAll()
{
	// Release() unregisters, which mutates live_: walk a copy.
	std::vector<Handle *> handles(live_.begin(), live_.end());
	for (Handle *h : handles)
		h->Release(true);
	live_.clear();
}

Handle::Handle(Napi::Env env) : registry_(AddonData::Get(env).registry)
{
	registry_->Add(this);
	registered_ = true;
}

Handle::~Handle() { Unregister(); }

void Handle::Unregister()
{
	if (registered_) {
		registry_->Remove(this);
		registered_ = false;
	}
}

} // namespace tenet
