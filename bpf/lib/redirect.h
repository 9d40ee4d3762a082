/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The one way a tenet program hands a packet to another interface: bpf_redirect() to the egress of
 * ifindex (XDP: XDP_REDIRECT; tc: TC_ACT_REDIRECT), after noting the target in this CPU's redirect
 * debug slot (lib/tables.h), so a test-run, which reports only the verdict, can check where the
 * packet would have gone.
 */
#ifndef TENET_LIB_REDIRECT_H
#define TENET_LIB_REDIRECT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi/policy.h"
#include "lib/tables.h"

static __always_inline int tenet_redirect(__u32 ifindex)
{
	struct tenet_redirect_debug *d;
	__u32 zero = 0;

	d = bpf_map_lookup_elem(&TENET_MAP_REDIRECT_DEBUG, &zero);
	if (d) {
		d->ifindex = ifindex;
		d->flags = 0;
		d->count++;
	}
	return bpf_redirect(ifindex, 0);
}

#endif /* TENET_LIB_REDIRECT_H */
