package storage

import (
	"sync/atomic"
	"time"
)

// CommitLatencyBounds are the upper bounds of WriterStats.CommitLatency's
// buckets: the time one group commit spends writing and syncing, which is
// the delay every reservation in it waits for. The last bucket is
// everything slower.
var CommitLatencyBounds = []time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, time.Second,
}

// BatchSizeBounds are the upper bounds of WriterStats.BatchSize's buckets,
// in operations per commit; the last bucket is everything larger.
var BatchSizeBounds = []uint64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// WriterStats are the group-commit writer's figures since Open.
type WriterStats struct {
	// Commits counts the transactions committed; Ops the operations they
	// carried, so Ops/Commits is the mean batch size.
	Commits uint64 `json:"commits"`
	Ops     uint64 `json:"ops"`
	// CommitTime is the total time spent in Commit (writing the pages and
	// both fsyncs), and CommitMax the longest single commit.
	CommitTime time.Duration `json:"commit_ns"`
	CommitMax  time.Duration `json:"commit_max_ns"`
	// CommitLatency counts commits by duration (CommitLatencyBounds, plus
	// one bucket for slower), BatchSize by operations (BatchSizeBounds,
	// plus one for larger).
	CommitLatency []uint64 `json:"commit_latency"`
	BatchSize     []uint64 `json:"batch_size"`
}

// writerStats is what the writer goroutine counts; readers load it
// atomically.
type writerStats struct {
	commits, ops, commitNS, commitMax atomic.Uint64
	latency                           [13]atomic.Uint64 // len(CommitLatencyBounds)+1
	batch                             [12]atomic.Uint64 // len(BatchSizeBounds)+1
}

// commit counts one commit of ops operations that took d.
func (s *writerStats) commit(ops int, d time.Duration) {
	s.commits.Add(1)
	s.ops.Add(uint64(ops))
	s.commitNS.Add(uint64(d))
	if uint64(d) > s.commitMax.Load() {
		s.commitMax.Store(uint64(d)) // only the writer goroutine stores
	}
	i := 0
	for i < len(CommitLatencyBounds) && d > CommitLatencyBounds[i] {
		i++
	}
	s.latency[i].Add(1)
	j := 0
	for j < len(BatchSizeBounds) && uint64(ops) > BatchSizeBounds[j] {
		j++
	}
	s.batch[j].Add(1)
}

// WriterStats reports the writer's commits, batch sizes and commit
// latencies since Open.
func (db *DB) WriterStats() WriterStats {
	s := &db.stats
	out := WriterStats{
		Commits:       s.commits.Load(),
		Ops:           s.ops.Load(),
		CommitTime:    time.Duration(s.commitNS.Load()),
		CommitMax:     time.Duration(s.commitMax.Load()),
		CommitLatency: make([]uint64, len(s.latency)),
		BatchSize:     make([]uint64, len(s.batch)),
	}
	for i := range s.latency {
		out.CommitLatency[i] = s.latency[i].Load()
	}
	for i := range s.batch {
		out.BatchSize[i] = s.batch[i].Load()
	}
	return out
}

// Quantile estimates the commit latency below which a fraction q (0 to 1)
// of commits fell: the upper bound of the bucket it lands in (the last
// bound for the overflow bucket); zero before the first commit.
func (s WriterStats) Quantile(q float64) time.Duration {
	var total uint64
	for _, n := range s.CommitLatency {
		total += n
	}
	if total == 0 {
		return 0
	}
	want := uint64(q*float64(total) + 0.5)
	var seen uint64
	for i, n := range s.CommitLatency {
		seen += n
		if seen >= want && n > 0 || seen == total {
			if i < len(CommitLatencyBounds) {
				return CommitLatencyBounds[i]
			}
			return s.CommitMax
		}
	}
	return s.CommitMax
}
