/*
 * fcdn_search: exact Joint-distance top-k (Qin et al. 2019, eq. 22) over packed hash-code blocks.
 *
 * The service keeps, per model version, a copy of every case's codes packed many cases per row in
 * fcdn_search.blocks (migrations/0002_search_blocks.sql). One row is one block: up to ~7 KB,
 * stored PLAIN (never compressed, never moved to TOAST), so this code reads it where it lies in
 * the shared buffer: no copy, no per-case executor overhead.
 *
 * A rebuild makes one record per case with fcdn_pack_case (native byte order, 32-byte head,
 * then 16 bytes per slice):
 *
 *   int32  case_id       int32  patient_id
 *   uint8  class         (0 NULL, 1 BENIGN, 2 INDETERMINATE, 3 MALIGNANT)
 *   uint8  nslices       (1..255)
 *   uint8  flags         (bit 0: diameter_mm IS NULL)
 *   uint8  pad, uint32 pad
 *   float8 diameter_mm
 *   uint64 middle code of the offset-0 slice
 *   uint64 shallow[nslices], uint64 deep[nslices]   (slices in offset order)
 *
 * and fcdn_pack_block turns a block's records (ascending case_id) into the columnar layout 2
 * the scan reads (described at BlockView below). Ascending case ids let the scan skip the
 * "dirty" cases (changed since the build; ranked by plain SQL instead) by a merge walk.
 *
 * fcdn_topk() returns the k best (joint, dm, case_id) of the blocks in exactly the order SQL's
 * ORDER BY joint, dm, case_id uses (float8 ordering: NaN above everything), with
 * joint = (wS*DL + wM*DM) + wD*DD computed in float8 in that order, as Postgres does. The caller
 * (src/repositories/search-sql.ts) merges these with the dirty cases and orders/limits again in
 * SQL, so ties are resolved by SQL itself.
 */
#include "postgres.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>

#include "access/genam.h"
#include "access/xact.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/tableam.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

PG_MODULE_MAGIC;

/* PostgreSQL 15 to 18: the calls whose signatures changed. */
#if PG_VERSION_NUM >= 180000
#define FCDN_INDEX_BEGINSCAN(heap, index, snapshot, nkeys) index_beginscan((heap), (index), (snapshot), NULL, (nkeys), 0)
#define FCDN_PRIMARY_KEY_INDEX(rel) RelationGetPrimaryKeyIndex((rel), false)
#else
#define FCDN_INDEX_BEGINSCAN(heap, index, snapshot, nkeys) index_beginscan((heap), (index), (snapshot), (nkeys), 0)
#define FCDN_PRIMARY_KEY_INDEX(rel) RelationGetPrimaryKeyIndex(rel)
#endif

/*
 * fcdn_search.threads: threads one search uses (the backend itself and threads-1 helpers).
 * Default 1: on the shared 2-core machine this was measured on, a second thread lost more to
 * holding every block's pin than it gained (docs/benchmarks/search.md); raise it on idle, wider nodes.
 * Superuser-set (postgresql.conf, ALTER SYSTEM/DATABASE/ROLE): threads are the server's CPUs, not a
 * session's to claim.
 */
static int	fcdn_threads = 1;
/* fcdn_search.min_blocks_per_thread: fewer blocks than this per thread are scanned by one. */
static int	fcdn_min_blocks_per_thread = 8;
/*
 * fcdn_search.cache_mb: the largest block set a backend keeps a private, contiguous copy of
 * (0: never). Scanning the copy skips the ~3,800 index and buffer lookups a 1M-slice set costs
 * on every search (about a third of the time, docs/benchmarks/search.md). See BlockCache.
 */
static int	fcdn_cache_mb = 256;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("fcdn_search.threads",
							"Threads one fcdn_search.topk call scans blocks with.",
							"Helper threads run plain C over pinned buffer pages only (no Postgres calls).",
							&fcdn_threads, 1, 1, 64, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("fcdn_search.min_blocks_per_thread",
							"Blocks per thread below which fewer threads are used.",
							NULL, &fcdn_min_blocks_per_thread, 8, 1, 1000000, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("fcdn_search.cache_mb",
							"Largest block set (MB) a backend keeps a private copy of between searches (0: none).",
							"The copy is used only while the block_sets row version it was made under is the visible one.",
							&fcdn_cache_mb, 256, 0, 65536, PGC_SUSET, GUC_UNIT_MB, NULL, NULL, NULL);
	MarkGUCPrefixReserved("fcdn_search");
}

#define REC_HEAD 32
#define FLAG_DIAM_NULL 1
#define MAX_K 1000000

typedef struct
{
	double		joint;
	int32		dm;
	int32		case_id;
	int32		dl;
	int32		dd;
} Hit;

typedef struct
{
	/* query */
	int			nq;
	uint64	   *qs;
	uint64	   *qd;
	uint64		qm;
	double		ws,
				wm,
				wd;
	bool		prune;			/* all weights finite and >= 0: partial sums bound joint */
	int			rq_s,			/* max_i H(q_shallow[i], q_shallow[0]) */
				rq_d;			/* max_i H(q_deep[i], q_deep[0]) */
	/* filters */
	bool		filtering;
	bool		has_exclude_case;
	int32		exclude_case;
	int			n_excl_pat;
	int32	   *excl_pat;		/* sorted */
	bool		excl_pat_null;	/* the list holds a NULL: "<> ALL" is never true */
	bool		has_class_mask;
	int32		class_mask;
	bool		has_dmin,
				has_dmax;
	double		dmin,
				dmax;
	bool		restrict_patient;
	bool		only_patient_null;
	int32		only_patient;
	/* cases ranked by SQL instead (sorted) */
	int			n_skip;
	int32	   *skip;
	/* top-k max-heap by (joint, dm, case_id) */
	int			k;
	int			n;
	Hit		   *heap;
	bool		corrupt;		/* a block is malformed (reported after the threads) */
	bool		old_format;		/* a block of an older layout: rebuild (reported as "no blocks") */
	/*
	 * Query cancel, statement_timeout, terminate. NULL: the backend scans alone and calls
	 * CHECK_FOR_INTERRUPTS itself. Else threads scan: no thread may call into Postgres, so the
	 * first to see an interrupt pending raises this shared flag, every thread stops, and the
	 * backend handles the interrupt once they are joined (scan_blocks).
	 */
	volatile sig_atomic_t *stop;
} Search;

typedef struct
{
	const char *data;
	size_t		len;
} BlockRef;

static inline uint64
load64(const char *p)
{
	uint64		v;

	memcpy(&v, p, 8);
	return v;
}

static inline int32
load32(const char *p)
{
	int32		v;

	memcpy(&v, p, 4);
	return v;
}

static inline double
loadf8(const char *p)
{
	double		v;

	memcpy(&v, p, 8);
	return v;
}

/* float8 comparison as Postgres orders it: NaN equals NaN and sorts above everything. */
static inline int
cmp_f8(double a, double b)
{
	if (unlikely(isnan(a)))
		return isnan(b) ? 0 : 1;
	if (unlikely(isnan(b)))
		return -1;
	return (a > b) - (a < b);
}

static inline int
cmp_hit(double joint, int32 dm, int32 case_id, const Hit *h)
{
	int			c = cmp_f8(joint, h->joint);

	if (c)
		return c;
	if (dm != h->dm)
		return dm < h->dm ? -1 : 1;
	return (case_id > h->case_id) - (case_id < h->case_id);
}

static void
sift_down(Hit *heap, int n, int i)
{
	for (;;)
	{
		int			l = 2 * i + 1,
					r = l + 1,
					m = i;

		if (l < n && cmp_hit(heap[l].joint, heap[l].dm, heap[l].case_id, &heap[m]) > 0)
			m = l;
		if (r < n && cmp_hit(heap[r].joint, heap[r].dm, heap[r].case_id, &heap[m]) > 0)
			m = r;
		if (m == i)
			return;
		{
			Hit			t = heap[i];

			heap[i] = heap[m];
			heap[m] = t;
		}
		i = m;
	}
}

static void
sift_up(Hit *heap, int i)
{
	while (i > 0)
	{
		int			p = (i - 1) / 2;

		if (cmp_hit(heap[i].joint, heap[i].dm, heap[i].case_id, &heap[p]) <= 0)
			return;
		{
			Hit			t = heap[i];

			heap[i] = heap[p];
			heap[p] = t;
		}
		i = p;
	}
}

static inline void
offer(Search *s, double joint, int32 dm, int32 case_id, int32 dl, int32 dd)
{
	if (s->n < s->k)
	{
		Hit		   *h = &s->heap[s->n];

		h->joint = joint;
		h->dm = dm;
		h->case_id = case_id;
		h->dl = dl;
		h->dd = dd;
		sift_up(s->heap, s->n);
		s->n++;
	}
	else if (cmp_hit(joint, dm, case_id, &s->heap[0]) < 0)
	{
		Hit		   *h = &s->heap[0];

		h->joint = joint;
		h->dm = dm;
		h->case_id = case_id;
		h->dl = dl;
		h->dd = dd;
		sift_down(s->heap, s->n, 0);
	}
}

static bool
contains_sorted(const int32 *a, int n, int32 v)
{
	int			lo = 0,
				hi = n;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (a[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && a[lo] == v;
}

/* The eligibility filters of the plain SQL (search-sql.ts), with SQL's NULL semantics. */
static bool
eligible(const Search *s, int32 case_id, int32 patient_id, uint8 cls, uint8 flags, const char *diam)
{
	if (s->has_exclude_case && case_id == s->exclude_case)
		return false;
	if (s->excl_pat_null)
		return false;
	if (s->n_excl_pat > 0 && contains_sorted(s->excl_pat, s->n_excl_pat, patient_id))
		return false;
	/* Bit cls of the mask; a class byte of 32 or more (a crafted block) matches no mask. */
	if (s->has_class_mask && (cls == 0 || cls >= 32 || !(((uint32) s->class_mask >> cls) & 1)))
		return false;
	if (s->has_dmin || s->has_dmax)
	{
		double		d;

		if (flags & FLAG_DIAM_NULL)
			return false;
		d = loadf8(diam);
		if (s->has_dmin && cmp_f8(d, s->dmin) < 0)
			return false;
		if (s->has_dmax && cmp_f8(d, s->dmax) > 0)
			return false;
	}
	if (s->restrict_patient && (s->only_patient_null || patient_id != s->only_patient))
		return false;
	return true;
}

/*
 * Block layout 2 (fcdn_search.pack_block turns the concatenated case records of a rebuild into
 * it): columns, so that the hot part of a case is 31 bytes and its slice codes are read only
 * when its lower bound does not rule it out.
 *
 *   uint32 magic 'FCB2', uint32 n (cases), uint32 m (slices), uint32 0
 *   int32  case_id[n]            ascending
 *   uint8  nslices[n], rs[n], rd[n], class[n], flags[n]
 *   uint64 middle0[n]            layer 17 of the centre slice
 *   uint64 s_ref[n], d_ref[n]    layers 4 and 25 of the case's first slice (its reference)
 *   int32  patient_id[n]
 *   float8 diameter_mm[n]
 *   uint64 shallow[m - n], deep[m - n]   the other slices, case after case
 * rs / rd: max over the case's slices of H(code, reference code) for layers 4 / 25.
 * A 3-slice case takes 77 bytes (the case records it is made of: 80).
 */
#define BLOCK_MAGIC 0x32424346	/* "FCB2" */

typedef struct
{
	uint32		n,
				m;
	const char *case_id,
			   *nsl,
			   *rs,
			   *rd,
			   *cls,
			   *flags,
			   *m0,
			   *sref,
			   *dref,
			   *patient,
			   *diam,
			   *sh,
			   *dp;
} BlockView;

static inline size_t
block_size(uint32 n, uint32 m)
{
	return 16 + (size_t) n * (4 + 5 + 8 * 3 + 4 + 8) + (size_t) (m - n) * 16;
}

static bool
block_view(const char *p, size_t len, BlockView *v)
{
	uint32		magic,
				n,
				m;

	if (len < 16)
		return false;
	memcpy(&magic, p, 4);
	memcpy(&n, p + 4, 4);
	memcpy(&m, p + 8, 4);
	if (magic != BLOCK_MAGIC || m < n || block_size(n, m) != len)
		return false;
	v->n = n;
	v->m = m;
	v->case_id = p + 16;
	v->nsl = v->case_id + 4 * (size_t) n;
	v->rs = v->nsl + n;
	v->rd = v->rs + n;
	v->cls = v->rd + n;
	v->flags = v->cls + n;
	v->m0 = v->flags + n;
	v->sref = v->m0 + 8 * (size_t) n;
	v->dref = v->sref + 8 * (size_t) n;
	v->patient = v->dref + 8 * (size_t) n;
	v->diam = v->patient + 4 * (size_t) n;
	v->sh = v->diam + 8 * (size_t) n;
	v->dp = v->sh + 8 * (size_t) (m - n);
	return true;
}

/*
 * The kernel, compiled twice: with the POPCNT instruction (chosen at run time when the CPU has
 * it) and generic. Per case, once the thread's heap holds k cases, with worst = its k-th best:
 *   1. DM (one xor + popcount); dropped if wM*DM > worst;
 *   2. a lower bound from the reference codes alone (triangle inequality: for any slices,
 *      H(q_i, c_j) >= H(q_0, c_ref) - H(q_i, q_0) - H(c_j, c_ref)), so
 *      DL >= H(qs_0, s_ref) - rq_s - rs and DD >= H(qd_0, d_ref) - rq_d - rd; dropped if
 *      (wS*LBL + wM*DM) + wD*LBD > worst;
 *   3. DL over all slice pairs (unrolled for 3 x 3); dropped if wS*DL + wM*DM > worst;
 *   4. DD, joint, offered to the heap.
 * Every bound is computed with the same float8 operations in the same order as the joint, and
 * rounding is monotone, so a bound above worst means the joint is above worst too (weights >= 0;
 * otherwise no case is dropped early). Equal values are never dropped: ties reach the heap,
 * which orders them by (joint, dm, case_id).
 */
/* Whether the scan must stop for an interrupt (see Search.stop); alone, the backend handles it here. */
static inline bool
scan_should_stop(Search *s)
{
	if (s->stop == NULL)
	{
		CHECK_FOR_INTERRUPTS();
		return false;
	}
	if (*s->stop)
		return true;
	if (unlikely(InterruptPending) && INTERRUPTS_CAN_BE_PROCESSED())
	{
		*s->stop = 1;
		return true;
	}
	return false;
}

#define SCAN_BLOCK_BODY \
	BlockView	v; \
	uint32		i, \
				si = 0; \
	size_t		off = 0; \
	if (!block_view(p, len, &v)) \
	{ \
		uint32		magic_ = 0; \
		if (len >= 4) memcpy(&magic_, p, 4); \
		if (len > 0 && magic_ != BLOCK_MAGIC) s->old_format = true; else if (len > 0) s->corrupt = true; \
		return; \
	} \
	if (s->n_skip > 0 && v.n > 0) \
	{ \
		int32		first = load32(v.case_id); \
		int			lo = 0, hi = s->n_skip; \
		while (lo < hi) { int mid = (lo + hi) / 2; if (s->skip[mid] < first) lo = mid + 1; else hi = mid; } \
		si = lo; \
	} \
	for (i = 0; i < v.n; i++) \
	{ \
		int32		case_id = load32(v.case_id + 4 * (size_t) i); \
		int			ns = (uint8) v.nsl[i]; \
		size_t		o = off; \
		int			dm, dl, dd, j, q; \
		double		jm, part, joint; \
		if (unlikely(ns < 1)) { s->corrupt = true; return; } \
		off += ns - 1; \
		if (unlikely(off > v.m - v.n)) { s->corrupt = true; return; } \
		if ((i & 63) == 0 && unlikely(scan_should_stop(s))) return; \
		if ((i & 7) == 0) \
		{ \
			__builtin_prefetch(v.case_id + 4 * (size_t) i + 64); \
			__builtin_prefetch(v.m0 + 8 * (size_t) i + 256); \
			__builtin_prefetch(v.sref + 8 * (size_t) i + 256); \
			__builtin_prefetch(v.dref + 8 * (size_t) i + 256); \
			__builtin_prefetch(v.sh + 8 * o + 512); \
			__builtin_prefetch(v.sh + 8 * o + 576); \
			__builtin_prefetch(v.dp + 8 * o + 512); \
			__builtin_prefetch(v.dp + 8 * o + 576); \
		} \
		if (si < (uint32) s->n_skip) \
		{ \
			while (si < (uint32) s->n_skip && s->skip[si] < case_id) si++; \
			if (si < (uint32) s->n_skip && s->skip[si] == case_id) continue; \
		} \
		if (s->filtering && !eligible(s, case_id, load32(v.patient + 4 * (size_t) i), (uint8) v.cls[i], (uint8) v.flags[i], v.diam + 8 * (size_t) i)) \
			continue; \
		dm = POPCOUNT(load64(v.m0 + 8 * (size_t) i) ^ s->qm); \
		jm = s->wm * (double) dm; \
		if (s->prune && s->n == s->k) \
		{ \
			double		worst = s->heap[0].joint; \
			int			lbl, lbd; \
			if (jm > worst) continue; \
			lbl = POPCOUNT(load64(v.sref + 8 * (size_t) i) ^ s->qs[0]) - s->rq_s - (uint8) v.rs[i]; \
			lbd = POPCOUNT(load64(v.dref + 8 * (size_t) i) ^ s->qd[0]) - s->rq_d - (uint8) v.rd[i]; \
			lbl = lbl > 0 ? lbl : 0; \
			lbd = lbd > 0 ? lbd : 0; \
			if ((s->ws * (double) lbl + jm) + s->wd * (double) lbd > worst) continue; \
		} \
		{ \
			const char *sh = v.sh + 8 * o; \
			const char *dp = v.dp + 8 * o; \
			uint64		sr = load64(v.sref + 8 * (size_t) i); \
			uint64		dr = load64(v.dref + 8 * (size_t) i); \
			if (ns == 3 && s->nq == 3) \
				dl = MIN9(sr, sh, s->qs); \
			else \
			{ \
				dl = 64; \
				for (j = 0; j < ns; j++) \
				{ \
					uint64 c = j == 0 ? sr : load64(sh + 8 * (j - 1)); \
					for (q = 0; q < s->nq; q++) { int d = POPCOUNT(c ^ s->qs[q]); dl = d < dl ? d : dl; } \
				} \
			} \
			part = s->ws * (double) dl + jm; \
			if (s->prune && s->n == s->k && part > s->heap[0].joint) continue; \
			if (ns == 3 && s->nq == 3) \
				dd = MIN9(dr, dp, s->qd); \
			else \
			{ \
				dd = 64; \
				for (j = 0; j < ns; j++) \
				{ \
					uint64 c = j == 0 ? dr : load64(dp + 8 * (j - 1)); \
					for (q = 0; q < s->nq; q++) { int d = POPCOUNT(c ^ s->qd[q]); dd = d < dd ? d : dd; } \
				} \
			} \
		} \
		joint = part + s->wd * (double) dd; \
		offer(s, joint, dm, case_id, dl, dd); \
	}

#define POPCOUNT(x) __builtin_popcountll(x)
#define MIN2(a, b) ((a) < (b) ? (a) : (b))
/* The common case, 3 stored slices against 3 query slices, unrolled: 9 xor + popcount, min. */
#define MIN9(first, rest, q) \
	({ \
		uint64 c0_ = (first), c1_ = load64((rest)), c2_ = load64((rest) + 8); \
		uint64 q0_ = (q)[0], q1_ = (q)[1], q2_ = (q)[2]; \
		int a_ = MIN2(POPCOUNT(c0_ ^ q0_), POPCOUNT(c0_ ^ q1_)); \
		int b_ = MIN2(POPCOUNT(c0_ ^ q2_), POPCOUNT(c1_ ^ q0_)); \
		int c_ = MIN2(POPCOUNT(c1_ ^ q1_), POPCOUNT(c1_ ^ q2_)); \
		int d_ = MIN2(POPCOUNT(c2_ ^ q0_), POPCOUNT(c2_ ^ q1_)); \
		int e_ = POPCOUNT(c2_ ^ q2_); \
		MIN2(MIN2(MIN2(a_, b_), MIN2(c_, d_)), e_); \
	})

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("popcnt")))
static void
scan_block_popcnt(Search *s, const char *p, size_t len)
{
SCAN_BLOCK_BODY
}
#endif

static void
scan_block_generic(Search *s, const char *p, size_t len)
{
SCAN_BLOCK_BODY
}

typedef void (*ScanBlockFn) (Search *s, const char *p, size_t len);

static ScanBlockFn
choose_kernel(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("popcnt"))
		return scan_block_popcnt;
#endif
	return scan_block_generic;
}

static int
cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a,
				y = *(const int32 *) b;

	return (x > y) - (x < y);
}

static int
cmp_hit_qsort(const void *a, const void *b)
{
	const Hit  *x = a;

	return cmp_hit(x->joint, x->dm, x->case_id, (const Hit *) b);
}

/* An int4[] argument as a sorted C array without its NULLs; *had_null tells if there were any. */
static int32 *
sorted_int4s(ArrayType *arr, int *n, bool *had_null)
{
	Datum	   *elems;
	bool	   *nulls;
	int			count,
				i,
				m = 0;
	int32	   *out;

	deconstruct_array(arr, INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &count);
	out = palloc(sizeof(int32) * (count > 0 ? count : 1));
	*had_null = false;
	for (i = 0; i < count; i++)
	{
		if (nulls[i])
			*had_null = true;
		else
			out[m++] = DatumGetInt32(elems[i]);
	}
	qsort(out, m, sizeof(int32), cmp_int32);
	*n = m;
	return out;
}

static uint64 *
int8s(ArrayType *arr, int *n, const char *what)
{
	Datum	   *elems;
	bool	   *nulls;
	int			count,
				i;
	uint64	   *out;

	deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &count);
	if (count < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("fcdn_search: %s needs at least one code", what)));
	out = palloc(sizeof(uint64) * count);
	for (i = 0; i < count; i++)
	{
		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("fcdn_search: %s holds a NULL code", what)));
		out[i] = (uint64) DatumGetInt64(elems[i]);
	}
	*n = count;
	return out;
}

static AttrNumber
attnum_of(TupleDesc td, const char *name)
{
	int			i;

	for (i = 0; i < td->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(td, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
			return a->attnum;
	}
	elog(ERROR, "fcdn_search: the blocks table has no column \"%s\"", name);
	return InvalidAttrNumber;
}

#define REQUIRE(n, what) \
	do { if (PG_ARGISNULL(n)) ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("fcdn_search: %s must not be NULL", what))); } while (0)

typedef struct
{
	Search		s;
	const BlockRef *blocks;
	int			from,
				to;
	ScanBlockFn kernel;
} Part;

static void
scan_part(Part *p)
{
	int			b;

	for (b = p->from; b < p->to && !p->s.corrupt && !p->s.old_format; b++)
	{
		if (scan_should_stop(&p->s))
			return;
		/* Blocks lie on scattered buffer pages: start fetching the next one's head now. */
		if (b + 1 < p->to)
		{
			const char *nx = p->blocks[b + 1].data;
			int			o;

			for (o = 0; o < 512; o += 64)
				__builtin_prefetch(nx + o);
		}
		p->kernel(&p->s, p->blocks[b].data, p->blocks[b].len);
	}
}

static void *
scan_part_thread(void *arg)
{
	scan_part((Part *) arg);
	return NULL;
}

/*
 * Scans the blocks with up to fcdn_search.threads threads, each over a contiguous share into its
 * own top-k heap (plain C only: no palloc, no elog, no Postgres call; all signals blocked, so the
 * backend's handlers only ever run in the backend's own thread), then merges the heaps into s.
 * A thread that cannot be started has its share scanned here. An interrupt stops every thread
 * (Search.stop); once they are joined the backend handles it: a cancel or timeout raises its
 * ERROR then, and an interrupt that raises nothing (e.g. a ProcSignal barrier) has the scan
 * start over, since the heaps hold only part of the blocks.
 */
static void
scan_blocks(Search *s, const BlockRef *blocks, int nblocks, ScanBlockFn kernel)
{
	int			nthreads = Min(fcdn_threads, Max(1, nblocks / Max(1, fcdn_min_blocks_per_thread)));
	Part	   *parts;
	pthread_t  *tids;
	bool	   *started;
	volatile sig_atomic_t stop;
	int			t,
				i,
				restarts = 0;

	if (nthreads <= 1)
	{
		Part		one = {.s = *s,.blocks = blocks,.from = 0,.to = nblocks,.kernel = kernel};

		one.s.stop = NULL;		/* the backend alone: CHECK_FOR_INTERRUPTS in the scan */
		scan_part(&one);
		*s = one.s;
		return;
	}
	parts = palloc(sizeof(Part) * nthreads);
	tids = palloc(sizeof(pthread_t) * nthreads);
	started = palloc0(sizeof(bool) * nthreads);
	for (t = 0; t < nthreads; t++)
		parts[t].s.heap = palloc(sizeof(Hit) * Max(1, s->k));
	for (;;)
	{
		stop = 0;
		for (t = 0; t < nthreads; t++)
		{
			Hit		   *heap = parts[t].s.heap;

			parts[t].s = *s;
			parts[t].s.n = 0;
			parts[t].s.heap = heap;
			parts[t].s.stop = &stop;
			parts[t].blocks = blocks;
			parts[t].from = (int) ((int64) nblocks * t / nthreads);
			parts[t].to = (int) ((int64) nblocks * (t + 1) / nthreads);
			parts[t].kernel = kernel;
			started[t] = false;
		}
		{
			sigset_t	all,
						old;

			sigfillset(&all);
			pthread_sigmask(SIG_SETMASK, &all, &old);
			for (t = 1; t < nthreads; t++)
				started[t] = pthread_create(&tids[t], NULL, scan_part_thread, &parts[t]) == 0;
			pthread_sigmask(SIG_SETMASK, &old, NULL);
		}
		scan_part(&parts[0]);
		for (t = 1; t < nthreads; t++)
		{
			if (started[t])
				pthread_join(tids[t], NULL);
			else
				scan_part(&parts[t]);
		}
		if (!stop)
			break;
		CHECK_FOR_INTERRUPTS();
		elog(DEBUG1, "fcdn_search: the threads stopped for an interrupt that raised no error; scanning again");
		if (++restarts > 100)
			elog(ERROR, "fcdn_search: the scan was interrupted %d times", restarts);
	}
	s->n = 0;
	for (t = 0; t < nthreads; t++)
	{
		s->corrupt |= parts[t].s.corrupt;
		s->old_format |= parts[t].s.old_format;
		for (i = 0; i < parts[t].s.n; i++)
		{
			Hit		   *h = &parts[t].s.heap[i];

			offer(s, h->joint, h->dm, h->case_id, h->dl, h->dd);
		}
	}
}

/*
 * The backend's private copy of one model's blocks (BlockCache).
 *
 * A copy is identified by the version of the model's fcdn_search.block_sets row it was made
 * under: (raw xmin, ctid) of that row, with the blocks table's OID and relfilenode. Blocks rows
 * are written only by fcdn_search.rebuild_blocks, which updates the block_sets row in the same
 * transaction, or deleted together with it (forget_all, ON DELETE CASCADE of the model). A
 * snapshot sees all of a transaction's writes or none, so a snapshot that sees the same
 * block_sets row version sees the same blocks rows: the copy holds exactly the bytes the index
 * scan would read. Without a visible block_sets row nothing is cached. The dirty list is applied
 * on every call (skip_cases), as for the shared pages.
 */
typedef struct
{
	bool		valid;
	Oid			relid;
	Oid			relfile;
	int32		model_id;
	TransactionId xmin;
	CommandId	cmin;
	ItemPointerData tid;
} BlockSetVersion;

typedef struct
{
	BlockSetVersion version;
	MemoryContext cxt;
	char	   *bytes;
	size_t		used,
				cap;
	BlockRef   *blocks;			/* pointers into bytes, set when complete */
	size_t	   *offsets;
	int			nblocks,
				capblocks;
	bool		seen;			/* a blocks row was there (else: "no blocks", FCB01) */
	bool		over;			/* larger than fcdn_search.cache_mb: given up */
} BlockCache;

static BlockCache cache;		/* the one in use (at most one model: the active one) */
static MemoryContext building_cxt;	/* a copy being made (left over by an ERROR: freed next call) */

/*
 * The last block-set version found larger than fcdn_search.cache_mb (too_big_mb at the time): not
 * copied again while it is the visible one and the limit is no larger, so a set too big for the
 * cache costs the plain index scan per search, not that plus a copy thrown away each time.
 */
static BlockSetVersion too_big;
static int	too_big_mb;

static bool
same_version(const BlockSetVersion *a, const BlockSetVersion *b)
{
	return a->valid && b->valid && a->relid == b->relid && a->relfile == b->relfile &&
		a->model_id == b->model_id && a->xmin == b->xmin && a->cmin == b->cmin &&
		ItemPointerEquals((ItemPointer) &a->tid, (ItemPointer) &b->tid);
}

/* The visible version of the model's block_sets row (the table beside the blocks table). */
static BlockSetVersion
block_set_version(Relation blocks_rel, int32 model_id)
{
	BlockSetVersion v;
	Oid			sets_id;

	memset(&v, 0, sizeof(v));
	sets_id = get_relname_relid("block_sets", RelationGetNamespace(blocks_rel));
	/* Its row version is read only by a caller who may read the table (else: no cache). */
	if (OidIsValid(sets_id) && pg_class_aclcheck(sets_id, GetUserId(), ACL_SELECT) == ACLCHECK_OK)
	{
		Relation	sets = table_open(sets_id, AccessShareLock);
		Oid			pkey = FCDN_PRIMARY_KEY_INDEX(sets);

		if (OidIsValid(pkey))
		{
			ScanKeyData key;
			SysScanDesc scan;
			HeapTuple	tup;

			ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(model_id));
			scan = systable_beginscan(sets, pkey, true, GetActiveSnapshot(), 1, &key);
			tup = systable_getnext(scan);
			if (HeapTupleIsValid(tup))
			{
				v.valid = true;
				v.relid = RelationGetRelid(blocks_rel);
#if PG_VERSION_NUM >= 160000
				v.relfile = blocks_rel->rd_locator.relNumber;
#else
				v.relfile = blocks_rel->rd_node.relNode;
#endif
				v.model_id = model_id;
				v.xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
				v.cmin = HeapTupleHeaderGetRawCommandId(tup->t_data);
				v.tid = tup->t_self;
			}
			systable_endscan(scan);
		}
		table_close(sets, AccessShareLock);
	}
	return v;
}

static void
copy_begin(BlockCache *c, const BlockSetVersion *v)
{
	if (building_cxt)
		MemoryContextDelete(building_cxt);
	building_cxt = AllocSetContextCreate(TopMemoryContext, "fcdn_search block cache", ALLOCSET_DEFAULT_SIZES);
	memset(c, 0, sizeof(*c));
	c->version = *v;
	elog(DEBUG1, "fcdn_search: copying the blocks of model %d into this backend's cache", v->model_id);
	c->cxt = building_cxt;
	c->cap = 1024 * 1024;
	c->bytes = MemoryContextAllocExtended(c->cxt, c->cap, MCXT_ALLOC_HUGE);
	c->capblocks = 1024;
	c->offsets = MemoryContextAlloc(c->cxt, sizeof(size_t) * c->capblocks);
	c->blocks = NULL;
}

static void
copy_block(BlockCache *c, const char *data, size_t len)
{
	if (c->over)
		return;
	if (c->used + len > (size_t) fcdn_cache_mb * 1024 * 1024)
	{
		c->over = true;
		return;
	}
	while (c->used + len > c->cap)
	{
		c->cap *= 2;
		c->bytes = repalloc_huge(c->bytes, c->cap);
	}
	if (c->nblocks == c->capblocks)
	{
		c->capblocks *= 2;
		c->offsets = repalloc(c->offsets, sizeof(size_t) * c->capblocks);
	}
	memcpy(c->bytes + c->used, data, len);
	c->offsets[c->nblocks++] = c->used;
	c->used += len;
}

/* Installs a finished copy as the cache (the previous one is freed), or drops it. */
static void
copy_end(BlockCache *c, bool keep)
{
	int			i;

	if (c->over)
	{
		too_big = c->version;
		too_big_mb = fcdn_cache_mb;
		elog(DEBUG1, "fcdn_search: the blocks of model %d exceed fcdn_search.cache_mb (%d MB): scanned in place until they change",
			 c->version.model_id, fcdn_cache_mb);
		/* A copy of an older version of the set is of no use any more. */
		if (cache.cxt && !same_version(&cache.version, &c->version))
		{
			MemoryContextDelete(cache.cxt);
			memset(&cache, 0, sizeof(cache));
		}
	}
	if (!keep || c->over)
	{
		MemoryContextDelete(c->cxt);
		building_cxt = NULL;
		return;
	}
	c->blocks = MemoryContextAlloc(c->cxt, sizeof(BlockRef) * Max(1, c->nblocks));
	for (i = 0; i < c->nblocks; i++)
	{
		c->blocks[i].data = c->bytes + c->offsets[i];
		c->blocks[i].len = (i + 1 < c->nblocks ? c->offsets[i + 1] : c->used) - c->offsets[i];
	}
	if (cache.cxt)
		MemoryContextDelete(cache.cxt);
	cache = *c;
	building_cxt = NULL;
}

PG_FUNCTION_INFO_V1(fcdn_topk);

/*
 * fcdn_topk(blocks regclass, model_id int4, q_shallow int8[], q_middle int8, q_deep int8[],
 *           ws float8, wm float8, wd float8, k int4,
 *           exclude_case int4, exclude_patients int4[], class_mask int4,
 *           min_diameter float8, max_diameter float8, restrict_patient bool, only_patient int4,
 *           skip_cases int4[])
 *   RETURNS TABLE (case_id int4, dl int4, dm int4, dd int4, joint float8)
 *
 * Raises SQLSTATE FCB01 when the model has no block row at all (never built, or dropped): the
 * caller then ranks with plain SQL.
 */
Datum
fcdn_topk(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Search		s;
	Oid			relid;
	int32		model_id;
	int			nqs,
				nqd,
				i;
	Relation	rel;
	TupleDesc	td;
	AttrNumber	att_model,
				att_data;
	ScanKeyData key;
	IndexScanDesc scan;
	Relation	irel;
	Oid			pkey;
	TupleTableSlot *slot;
	bool		seen = false;
	bool		stream;
	ScanBlockFn kernel = choose_kernel();
	BlockRef   *blocks;
	Buffer	   *pins;
	int			nblocks = 0,
				npins = 0,
				cap;
	BlockSetVersion version;
	BlockCache	copy;
	bool		copying = false;
	AclResult	aclresult;

	REQUIRE(0, "blocks");
	REQUIRE(1, "model_id");
	REQUIRE(2, "q_shallow");
	REQUIRE(3, "q_middle");
	REQUIRE(4, "q_deep");
	REQUIRE(5, "ws");
	REQUIRE(6, "wm");
	REQUIRE(7, "wd");
	REQUIRE(8, "k");
	REQUIRE(14, "restrict_patient");

	memset(&s, 0, sizeof(s));
	relid = PG_GETARG_OID(0);
	model_id = PG_GETARG_INT32(1);
	s.qs = int8s(PG_GETARG_ARRAYTYPE_P(2), &nqs, "q_shallow");
	s.qm = (uint64) PG_GETARG_INT64(3);
	s.qd = int8s(PG_GETARG_ARRAYTYPE_P(4), &nqd, "q_deep");
	if (nqs != nqd)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("fcdn_search: q_shallow and q_deep differ in length")));
	s.nq = nqs;
	for (i = 0; i < s.nq; i++)
	{
		s.rq_s = Max(s.rq_s, __builtin_popcountll(s.qs[i] ^ s.qs[0]));
		s.rq_d = Max(s.rq_d, __builtin_popcountll(s.qd[i] ^ s.qd[0]));
	}
	s.ws = PG_GETARG_FLOAT8(5);
	s.wm = PG_GETARG_FLOAT8(6);
	s.wd = PG_GETARG_FLOAT8(7);
	s.prune = isfinite(s.ws) && isfinite(s.wm) && isfinite(s.wd) && s.ws >= 0 && s.wm >= 0 && s.wd >= 0;
	s.k = PG_GETARG_INT32(8);
	if (s.k < 0)
		s.k = 0;
	if (s.k > MAX_K)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("fcdn_search: k must be at most %d", MAX_K)));

	if (!PG_ARGISNULL(9))
	{
		s.has_exclude_case = true;
		s.exclude_case = PG_GETARG_INT32(9);
	}
	if (!PG_ARGISNULL(10))
		s.excl_pat = sorted_int4s(PG_GETARG_ARRAYTYPE_P(10), &s.n_excl_pat, &s.excl_pat_null);
	if (!PG_ARGISNULL(11))
	{
		s.has_class_mask = true;
		s.class_mask = PG_GETARG_INT32(11);
	}
	if (!PG_ARGISNULL(12))
	{
		s.has_dmin = true;
		s.dmin = PG_GETARG_FLOAT8(12);
	}
	if (!PG_ARGISNULL(13))
	{
		s.has_dmax = true;
		s.dmax = PG_GETARG_FLOAT8(13);
	}
	s.restrict_patient = PG_GETARG_BOOL(14);
	if (s.restrict_patient)
	{
		s.only_patient_null = PG_ARGISNULL(15);
		if (!s.only_patient_null)
			s.only_patient = PG_GETARG_INT32(15);
	}
	if (!PG_ARGISNULL(16))
	{
		bool		ignored;

		s.skip = sorted_int4s(PG_GETARG_ARRAYTYPE_P(16), &s.n_skip, &ignored);
	}
	s.filtering = s.has_exclude_case || s.excl_pat_null || s.n_excl_pat > 0 || s.has_class_mask ||
		s.has_dmin || s.has_dmax || s.restrict_patient;
	s.heap = palloc(sizeof(Hit) * (s.k > 0 ? s.k : 1));

	InitMaterializedSRF(fcinfo, 0);

	/*
	 * Collect the model's blocks through the primary key (model_id, block_no): only this model's
	 * live rows are visited, not the pages of other models or the ones a rebuild emptied. Each
	 * block's page stays pinned (IncrBufferRefCount) until the scan is over, so its bytes stay
	 * put while helper threads read them; tuple data is never changed in place.
	 */
	/*
	 * The caller must be allowed to read the table, as a SELECT of it would require (checked
	 * before its lock is taken), and it must be a plain table without row-level security: the
	 * scan reads every row of the model.
	 */
	aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, get_rel_name(relid));
	rel = table_open(relid, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("fcdn_search: \"%s\" is not a table", RelationGetRelationName(rel))));
	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("fcdn_search: \"%s\" has row-level security, which the scan cannot apply", RelationGetRelationName(rel))));
	td = RelationGetDescr(rel);
	att_model = attnum_of(td, "model_id");
	att_data = attnum_of(td, "data");
	if (TupleDescAttr(td, att_model - 1)->atttypid != INT4OID || TupleDescAttr(td, att_data - 1)->atttypid != BYTEAOID)
		elog(ERROR, "fcdn_search: blocks table needs model_id int4 and data bytea");
	version = fcdn_cache_mb > 0 ? block_set_version(rel, model_id) : (BlockSetVersion) {0};
	if (same_version(&version, &cache.version))
	{
		/* This backend's copy is what the index scan below would read: scan it instead. */
		table_close(rel, AccessShareLock);
		seen = cache.seen;
		if (s.k > 0 && cache.nblocks > 0)
			scan_blocks(&s, cache.blocks, cache.nblocks, kernel);
		goto scanned;
	}
	copying = version.valid && !(same_version(&version, &too_big) && fcdn_cache_mb <= too_big_mb);
	if (copying)
		copy_begin(&copy, &version);

	pkey = FCDN_PRIMARY_KEY_INDEX(rel);
	if (!OidIsValid(pkey))
		elog(ERROR, "fcdn_search: the blocks table needs a primary key (model_id, block_no)");
	irel = index_open(pkey, AccessShareLock);
	if (irel->rd_index->indnatts < 1 || irel->rd_index->indkey.values[0] != att_model)
		elog(ERROR, "fcdn_search: the blocks table's primary key must start with model_id");
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(model_id));
	/*
	 * Threads pay for holding every block's pin (Postgres tracks more than 8 pins of a backend in a
	 * hash table); with one thread, or too few blocks to share, each block is scanned as fetched.
	 */
	stream = fcdn_threads <= 1 || RelationGetNumberOfBlocks(rel) < (BlockNumber) (2 * Max(1, fcdn_min_blocks_per_thread));
	slot = table_slot_create(rel, NULL);
	scan = FCDN_INDEX_BEGINSCAN(rel, irel, GetActiveSnapshot(), 1);
	index_rescan(scan, &key, 1, NULL, 0);
	cap = 1024;
	blocks = palloc(sizeof(BlockRef) * cap);
	pins = palloc(sizeof(Buffer) * cap);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d;
		struct varlena *v;

		CHECK_FOR_INTERRUPTS();
		d = slot_getattr(slot, att_data, &isnull);
		seen = true;
		if (isnull)
			continue;
		if (nblocks == cap)
		{
			cap *= 2;
			blocks = repalloc(blocks, sizeof(BlockRef) * cap);
			pins = repalloc(pins, sizeof(Buffer) * cap);
		}
		v = (struct varlena *) DatumGetPointer(d);
		if (stream)
		{
			/* One thread: scan the block now, while the slot holds its page; no extra pin. */
			struct varlena *w = VARATT_IS_EXTENDED(v) ? pg_detoast_datum_packed(v) : v;

			if (s.k > 0 && !s.corrupt && !s.old_format)
				kernel(&s, VARDATA_ANY(w), VARSIZE_ANY_EXHDR(w));
			if (copying)
				copy_block(&copy, VARDATA_ANY(w), VARSIZE_ANY_EXHDR(w));
			if (w != v)
				pfree(w);
			continue;
		}
		if (VARATT_IS_EXTENDED(v) || !TTS_IS_BUFFERTUPLE(slot) || !BufferIsValid(((BufferHeapTupleTableSlot *) slot)->buffer))
			v = pg_detoast_datum_copy(v);	/* a private copy (never for STORAGE PLAIN rows) */
		else
		{
			Buffer		buf = ((BufferHeapTupleTableSlot *) slot)->buffer;

			IncrBufferRefCount(buf);
			pins[npins++] = buf;
		}
		blocks[nblocks].data = VARDATA_ANY(v);
		blocks[nblocks].len = VARSIZE_ANY_EXHDR(v);
		if (copying)
			copy_block(&copy, blocks[nblocks].data, blocks[nblocks].len);
		nblocks++;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(irel, AccessShareLock);

	if (!stream && s.k > 0 && nblocks > 0)
		scan_blocks(&s, blocks, nblocks, kernel);

	for (i = 0; i < npins; i++)
		ReleaseBuffer(pins[i]);
	table_close(rel, AccessShareLock);
	if (copying)
	{
		copy.seen = seen;
		/* Only a well-formed set is kept: a bad one raises below, every time, as before. */
		copy_end(&copy, seen && !s.corrupt && !s.old_format);
	}

scanned:
	if (s.corrupt)
		elog(ERROR, "fcdn_search: corrupt block for model %d", model_id);
	if (!seen || s.old_format)
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('F', 'C', 'B', '0', '1')),
				 errmsg("fcdn_search: no blocks for model %d", model_id),
				 errhint("Build them with fcdn_search.rebuild_blocks(model_id).")));

	qsort(s.heap, s.n, sizeof(Hit), cmp_hit_qsort);
	for (i = 0; i < s.n; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		values[0] = Int32GetDatum(s.heap[i].case_id);
		values[1] = Int32GetDatum(s.heap[i].dl);
		values[2] = Int32GetDatum(s.heap[i].dm);
		values[3] = Int32GetDatum(s.heap[i].dd);
		values[4] = Float8GetDatum(s.heap[i].joint);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(fcdn_pack_case);

/*
 * fcdn_pack_case(case_id int4, patient_id int4, class int4, diameter_mm float8, middle0 int8,
 *                shallow int8[], deep int8[]) RETURNS bytea: one case record (layout above).
 */
Datum
fcdn_pack_case(PG_FUNCTION_ARGS)
{
	int			nsh,
				ndp,
				cls;
	uint64	   *sh,
			   *dp;
	bytea	   *out;
	char	   *p;
	int32		v32;
	uint64		m0;
	double		diam = 0;
	uint8		flags = 0;

	REQUIRE(0, "case_id");
	REQUIRE(1, "patient_id");
	REQUIRE(2, "class");
	REQUIRE(4, "middle0");
	REQUIRE(5, "shallow");
	REQUIRE(6, "deep");
	sh = int8s(PG_GETARG_ARRAYTYPE_P(5), &nsh, "shallow");
	dp = int8s(PG_GETARG_ARRAYTYPE_P(6), &ndp, "deep");
	if (nsh != ndp || nsh > 255)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("fcdn_search: a case needs 1..255 slices with both codes")));
	cls = PG_GETARG_INT32(2);
	if (cls < 0 || cls > 3)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("fcdn_search: class must be 0..3")));
	if (PG_ARGISNULL(3))
		flags |= FLAG_DIAM_NULL;
	else
		diam = PG_GETARG_FLOAT8(3);
	m0 = (uint64) PG_GETARG_INT64(4);

	out = palloc0(VARHDRSZ + REC_HEAD + 16 * nsh);
	SET_VARSIZE(out, VARHDRSZ + REC_HEAD + 16 * nsh);
	p = VARDATA(out);
	v32 = PG_GETARG_INT32(0);
	memcpy(p, &v32, 4);
	v32 = PG_GETARG_INT32(1);
	memcpy(p + 4, &v32, 4);
	p[8] = (char) cls;
	p[9] = (char) nsh;
	p[10] = (char) flags;
	memcpy(p + 16, &diam, 8);
	memcpy(p + 24, &m0, 8);
	memcpy(p + REC_HEAD, sh, 8 * nsh);
	memcpy(p + REC_HEAD + 8 * nsh, dp, 8 * nsh);
	PG_RETURN_BYTEA_P(out);
}

PG_FUNCTION_INFO_V1(fcdn_pack_block);

/*
 * fcdn_pack_block(records bytea) RETURNS bytea: the case records of fcdn_pack_case, concatenated
 * in ascending case_id, turned into one block of layout 2 (above).
 */
Datum
fcdn_pack_block(PG_FUNCTION_ARGS)
{
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	const char *p = VARDATA_ANY(in);
	size_t		len = VARSIZE_ANY_EXHDR(in),
				pos = 0;
	uint32		n = 0,
				m = 0,
				i;
	bytea	   *out;
	char	   *b;
	BlockView	v;
	size_t		size,
				rest = 0;
	uint32		zero = 0,
				magic = BLOCK_MAGIC;

	/* count */
	while (pos < len)
	{
		int			ns;

		if (len - pos < REC_HEAD)
			elog(ERROR, "fcdn_search: truncated case record");
		ns = (uint8) p[pos + 9];
		if (ns < 1 || len - pos < (size_t) REC_HEAD + 16 * ns)
			elog(ERROR, "fcdn_search: malformed case record");
		n++;
		m += ns;
		pos += REC_HEAD + 16 * ns;
	}
	size = block_size(n, m);
	out = palloc0(VARHDRSZ + size);
	SET_VARSIZE(out, VARHDRSZ + size);
	b = VARDATA(out);
	memcpy(b, &magic, 4);
	memcpy(b + 4, &n, 4);
	memcpy(b + 8, &m, 4);
	memcpy(b + 12, &zero, 4);
	if (!block_view(b, size, &v))
		elog(ERROR, "fcdn_search: block layout mismatch");
	pos = 0;
	for (i = 0; i < n; i++)
	{
		const char *r = p + pos;
		int			ns = (uint8) r[9],
					j,
					rs = 0,
					rd = 0;
		uint64		s0 = load64(r + REC_HEAD),
					d0 = load64(r + REC_HEAD + 8 * ns);
		int32		cid = load32(r);

		if (i > 0 && cid <= load32(v.case_id + 4 * (size_t) (i - 1)))
			elog(ERROR, "fcdn_search: case records must be in ascending case_id");
		for (j = 1; j < ns; j++)
		{
			uint64		sj = load64(r + REC_HEAD + 8 * j),
						dj = load64(r + REC_HEAD + 8 * ns + 8 * j);

			rs = Max(rs, __builtin_popcountll(sj ^ s0));
			rd = Max(rd, __builtin_popcountll(dj ^ d0));
			memcpy((char *) v.sh + 8 * rest, &sj, 8);
			memcpy((char *) v.dp + 8 * rest, &dj, 8);
			rest++;
		}
		memcpy((char *) v.case_id + 4 * (size_t) i, r, 4);
		((char *) v.nsl)[i] = (char) ns;
		((char *) v.rs)[i] = (char) rs;
		((char *) v.rd)[i] = (char) rd;
		((char *) v.cls)[i] = r[8];
		((char *) v.flags)[i] = r[10];
		memcpy((char *) v.m0 + 8 * (size_t) i, r + 24, 8);
		memcpy((char *) v.sref + 8 * (size_t) i, &s0, 8);
		memcpy((char *) v.dref + 8 * (size_t) i, &d0, 8);
		memcpy((char *) v.patient + 4 * (size_t) i, r + 4, 4);
		memcpy((char *) v.diam + 8 * (size_t) i, r + 16, 8);
		pos += REC_HEAD + 16 * ns;
	}
	PG_RETURN_BYTEA_P(out);
}
