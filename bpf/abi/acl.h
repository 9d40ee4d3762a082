/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Port ACLs as the datapath sees them (lib/acl.h, docs/acl.md): the per-port entry naming the
 * rule sets of both directions, the field tables the classifier looks packets up in, the rules'
 * actions and hit counters, the connection tracking of stateful rules and the verdicts of first
 * fragments.
 *
 * Classification without a walk over the rules
 * ---------------------------------------------
 * The compiler sorts the allow/deny rules of one port and direction by precedence (weight
 * descending, deny before allow at equal weight, then document order): a rule's rank is its bit
 * in a bitmap of TENET_ACL_RULES_MAX bits. For each match field (remote and local address per
 * family, protocol with local port, protocol with remote port, remote MAC, isolation VSID) one LPM
 * trie lookup returns the bitmap of the rules that field admits, wildcards included. The lowest
 * set bit of the AND of the six bitmaps is the deciding rule. Every bitmap carries a summary (bit
 * w set iff word w is non-zero) so the AND touches only words that are non-zero in every bitmap.
 *
 * Atomic rule changes: rule sets
 * ------------------------------
 * Every field entry, rule and rule counter is keyed by a rule set id (rsid), unique per port,
 * direction and version. The agent writes a new rule set under a fresh id, then replaces the
 * port's struct tenet_acl_port in one map update (the flip), waits an RCU grace period and deletes
 * the old id's entries. A packet reads the port entry once, so it sees one rule set or the other.
 * Connection tracking and fragment verdicts are not policy and survive every change.
 */
#ifndef TENET_ABI_ACL_H
#define TENET_ABI_ACL_H

#include <linux/types.h>

/* Rules per port and direction: the bits of a bitmap. A multiple of 64. */
#define TENET_ACL_RULES_MAX 10240
#define TENET_ACL_WORDS (TENET_ACL_RULES_MAX / 64)
/* 64-bit summary words: one bit per bitmap word. */
#define TENET_ACL_SUMMARY_WORDS ((TENET_ACL_WORDS + 63) / 64)

/* Direction of a packet relative to the VM, carried in __u8 fields and indexing rsid[]. */
enum tenet_acl_dir {
	TENET_ACL_IN = 0,  /* to the VM */
	TENET_ACL_OUT = 1, /* from the VM */
};

/* Match fields, the field byte of struct tenet_acl_field_key. Data bits per field in brackets. */
enum tenet_acl_field {
	TENET_ACL_F_REMOTE4 = 1, /* remote IPv4 address [32] */
	TENET_ACL_F_REMOTE6 = 2, /* remote IPv6 address [128] */
	TENET_ACL_F_LOCAL4 = 3,	 /* local (the VM's) IPv4 address [32] */
	TENET_ACL_F_LOCAL6 = 4,	 /* local IPv6 address [128] */
	/*
	 * IP protocol (after IPv6 extension headers) then the local TCP/UDP port in network order,
	 * 0 without ports [8 + 16]: a rule's protocol is a /8 prefix, its port range prefixes below
	 * it. Port ranges need TCP or UDP (validated), so one field carries both constraints.
	 */
	TENET_ACL_F_PROTO_LPORT = 5,
	TENET_ACL_F_PROTO_RPORT = 6, /* protocol, remote port; protocol-only rules are /0 here */
	TENET_ACL_F_RMAC = 7,	     /* remote MAC [48] */
	TENET_ACL_F_VSID = 8,	     /* VSID of the remote end, network order [32] */
};

/* A port with ACL rules, keyed by the host-side port's ifindex (__u32). */
struct tenet_acl_port {
	__u32 rsid[2]; /* rule set per enum tenet_acl_dir; 0: no rules, everything allowed */
	/*
	 * Bit (dir * 16 + field), enum tenet_acl_field: every rule of that direction leaves the
	 * field open, so its bitmap admits all rules and the lookup is skipped. 0: look up all.
	 */
	__u32 open_fields;
	__u32 pad;
};
_Static_assert(sizeof(struct tenet_acl_port) == 16, "struct tenet_acl_port is ABI: 16 bytes");

/*
 * Key of the field LPM trie. prefixlen counts bits from rsid on: rsid, field and pad (64 bits)
 * always match exactly, so a field value of /p bits has prefixlen 64 + p and the wildcard entry
 * of a field (the rules that do not constrain it) has prefixlen 64.
 */
struct tenet_acl_field_key {
	__u32 prefixlen;
	__u32 rsid;
	__u8 field; /* enum tenet_acl_field */
	__u8 pad[3];
	__u8 data[16]; /* network order, left-aligned */
};
_Static_assert(sizeof(struct tenet_acl_field_key) == 28,
	       "struct tenet_acl_field_key is ABI: 28 bytes");

#define TENET_ACL_FIELD_FIXED_BITS 64

/* The rules one field value admits: bit r of words is the rule of rank r. */
struct tenet_acl_bits {
	__u64 summary[TENET_ACL_SUMMARY_WORDS]; /* bit w: words[w] != 0 */
	__u64 words[TENET_ACL_WORDS];
};
_Static_assert(sizeof(struct tenet_acl_bits) == 1304, "struct tenet_acl_bits is ABI: 1304 bytes");

/* Key of a rule and of its hit counters. */
struct tenet_acl_rule_key {
	__u32 rsid;
	__u32 rank; /* precedence within the rule set, 0 first */
};
_Static_assert(sizeof(struct tenet_acl_rule_key) == 8, "struct tenet_acl_rule_key is ABI: 8 bytes");

enum tenet_acl_action {
	TENET_ACL_ALLOW = 1,
	TENET_ACL_DENY = 2,
};

enum tenet_acl_rule_flags {
	/* An allowed packet creates or refreshes a connection tracking entry. */
	TENET_ACL_RULE_STATEFUL = 1,
};

struct tenet_acl_rule {
	__u8 action; /* enum tenet_acl_action */
	__u8 flags;  /* enum tenet_acl_rule_flags */
	__u16 pad;
	__u32 idle_timeout_s; /* stateful: an entry idle this long is gone */
};
_Static_assert(sizeof(struct tenet_acl_rule) == 8, "struct tenet_acl_rule is ABI: 8 bytes");

/*
 * A flow as seen from a port: the VM's (local) and the other end's (remote) address and ports,
 * whatever the direction of the packet, so a reply finds the entry its request made. ICMP echo
 * uses the identifier as lport and 0 as rport; other protocols without ports use 0 and 0.
 */
struct tenet_acl_ct_key {
	__u32 ifindex; /* host-side port */
	__u8 family;   /* enum tenet_family */
	__u8 proto;
	__be16 lport;
	__be16 rport;
	__u8 pad[2];
	__u8 laddr[16];
	__u8 raddr[16];
};
_Static_assert(sizeof(struct tenet_acl_ct_key) == 44, "struct tenet_acl_ct_key is ABI: 44 bytes");

/* No rule (allowed by default or by connection tracking): the rank field of the values below. */
#define TENET_ACL_NO_RULE 0xffffffffu

struct tenet_acl_ct {
	__u64 last_seen_ns;   /* bpf_ktime_get_ns() of the last packet that refreshed it */
	__u32 idle_timeout_s; /* expired (and treated as absent) after this long idle */
	__u32 rsid;	      /* the rule that allowed the first packet, for operators */
	__u32 rank;
	__u8 dir; /* enum tenet_acl_dir of the packets that opened it; replies go the other way */
	__u8 pad[3];
};
_Static_assert(sizeof(struct tenet_acl_ct) == 24, "struct tenet_acl_ct is ABI: 24 bytes");

/* A fragmented datagram on a port: (addresses, protocol, IP identification, direction). */
struct tenet_acl_frag_key {
	__u32 ifindex;
	__u32 id; /* IPv4: the 16-bit identification; IPv6: the fragment header's 32 bits */
	__u8 family;
	__u8 proto;
	__u8 dir; /* enum tenet_acl_dir */
	__u8 pad;
	__u8 laddr[16];
	__u8 raddr[16];
};
_Static_assert(sizeof(struct tenet_acl_frag_key) == 44,
	       "struct tenet_acl_frag_key is ABI: 44 bytes");

/* The verdict the first fragment got; later fragments get the same. */
struct tenet_acl_frag {
	__u32 rsid;
	__u32 rank;   /* deciding rule or TENET_ACL_NO_RULE */
	__u8 verdict; /* enum tenet_acl_action */
	__u8 pad[7];
};
_Static_assert(sizeof(struct tenet_acl_frag) == 16, "struct tenet_acl_frag is ABI: 16 bytes");

/* Slots of the per-CPU ACL statistics (struct tenet_counter each). */
enum tenet_acl_stat {
	/* Classified on a port with rules, and no rule matched: allowed (the default). */
	TENET_ACL_STAT_NO_MATCH = 0,
	/* A stateful allow created a connection tracking entry (the key was not in the map). */
	TENET_ACL_STAT_CT_INSERT = 1,
	/* Admitted as a reply of a tracked flow, whatever the rules say. */
	TENET_ACL_STAT_CT_REPLY = 2,
	/* An ICMP error whose embedded packet belongs to a tracked flow: admitted. */
	TENET_ACL_STAT_CT_RELATED = 3,
	/* A tracked entry was found idle past its timeout: treated as absent. */
	TENET_ACL_STAT_CT_EXPIRED = 4,
	/*
	 * A packet found no live entry of its flow and was classified as new traffic: unsolicited
	 * packets, first packets of flows, and replies of flows the LRU evicted.
	 */
	TENET_ACL_STAT_CT_MISS = 5,
	/* A first fragment's verdict was stored for the later ones. */
	TENET_ACL_STAT_FRAG_STORED = 6,
	/* A later fragment took its first fragment's verdict. */
	TENET_ACL_STAT_FRAG_HIT = 7,
	/* A later fragment without a stored verdict: dropped (TENET_DROP_ACL_FRAGMENT). */
	TENET_ACL_STAT_FRAG_MISS = 8,
	TENET_ACL_STAT_SLOTS = 16,
};

/*
 * Per-CPU working space of the classifier (TENET_MAP_ACL_SCRATCH): the packet's flow, match
 * values, keys and header copies, kept off the stack (the forwarding path leaves the ACL calls 48
 * bytes of the 512). Not read by the agent.
 */
struct tenet_acl_scratch {
	struct tenet_acl_ct ct;		     /* a new connection tracking entry */
	__u64 sum[TENET_ACL_SUMMARY_WORDS];  /* candidate bitmap words */
	__u64 cand[TENET_ACL_SUMMARY_WORDS]; /* candidates not yet visited */
	__u64 acc[TENET_ACL_WORDS];	     /* AND of the first three fields' words */
	struct tenet_acl_ct_key flow;	     /* the packet's flow; ports for connection tracking */
	struct tenet_acl_ct_key emb;	     /* an ICMP error's embedded flow */
	struct tenet_acl_frag_key frag;
	struct tenet_acl_field_key fk;
	struct tenet_acl_frag fv; /* the verdict, stored for later fragments */
	struct tenet_acl_rule_key rk;
	__u8 hdr[40]; /* an IP header or an extension header */
	__u8 l4[8];   /* the first bytes of an L4 header */
	__u8 saddr[16];
	__u8 daddr[16];
	__u64 now;	   /* bpf_ktime_get_ns() of this packet */
	__u32 rsid;	   /* the port's rule set in this direction */
	__u32 remote_vsid; /* virtual subnet of the other end */
	__u32 len;	   /* frame length, for the counters */
	__u32 rank;	   /* deciding rule, TENET_ACL_NO_RULE */
	__u32 l4_off;
	__be16 sport; /* of the header in l4 (ICMP echo: the identifier) */
	__be16 dport;
	__u8 proto;
	__u8 l4_err; /* the header in l4 is an ICMP error */
	__u8 rmac[6];
	__u8 frag_kind; /* 0: not a fragment, 1: first, 2: later */
	__u8 icmp_err;	/* emb is valid */
	__u8 dir;	/* enum tenet_acl_dir */
	__u8 pad1;
	__u16 open_fields; /* this direction's half of tenet_acl_port.open_fields */
	__u8 pad2[2];
};
_Static_assert(sizeof(struct tenet_acl_scratch) == 1664,
	       "struct tenet_acl_scratch is ABI: 1664 bytes");

#endif /* TENET_ABI_ACL_H */
