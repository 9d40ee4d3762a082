// SPDX-License-Identifier: Apache-2.0
// Every live native handle (object, map, program, link, ring buffer) is registered here so that
// the environment cleanup hook can release all kernel resources when the JS environment goes away
// (process exit, worker thread exit), even for handles JS never closed and GC never finalized.
#pragma once

#include <napi.h>

#include <memory>
#include <unordered_set>

namespace tenet {

class Handle;

class Registry {
public:
	void Add(Handle *h) { live_.insert(h); }
	void Remove(Handle *h) { live_.erase(h); }
	size_t size() const { return live_.size(); }

	// Environment teardown: release every handle. JS must not be touched from here on.
	void ReleaseAll();

private:
	std::unordered_set<Handle *> live_;
};

// Base of every native handle. Registered while it holds resources; the registry is shared so
// that a handle finalized after teardown (when instance data may already be gone) can still
// unregister safely.
class Handle {
public:
	explicit Handle(Napi::Env env);
	virtual ~Handle();
	Handle(const Handle &) = delete;
	Handle &operator=(const Handle &) = delete;

	// Frees the kernel resources. Idempotent. With teardown=true the JS environment is being
	// destroyed: only OS resources may be released, no JS values or references touched.
	virtual void Release(bool teardown) noexcept = 0;

protected:
	// Called by subclasses once their resources are gone, so the registry stops tracking them.
	void Unregister();

private:
	std::shared_ptr<Registry> registry_;
	bool registered_ = false;
};

} // namespace tenet
