//go:build linux

package storage

import (
	"os"
	"slices"
	"syscall"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// releaser drops from the process the pages of bbolt's mapping that a long
// read (an export of every record) has visited, so that they stop counting
// in its RSS: otherwise an export of a 250 MB file leaves 250 MB resident,
// four of them at once no less. The mapping is shared and read-only (bbolt
// writes through the file), so MADV_DONTNEED only unmaps the pages: the
// next read of one, by any goroutine, maps it again from the page cache.
// It runs inside the read transaction, whose hold on bbolt's mmap lock
// keeps the mapping from being remapped under it.
//
// Pages are released in aligned blocks of releaseBlock bytes: a fault on a
// file mapping maps the pages around it too (the kernel's fault-around, 64
// KiB by default), pages of other buckets among them, and those count in
// RSS just the same.
type releaser struct {
	lo, hi uintptr // the mapped file, as far as tx can read it
	blocks []uintptr
	// base is a pointer into the mapping (the first one noted), from which
	// the blocks' pointers are made: Go pointers must not be made from
	// integers.
	base     unsafe.Pointer
	baseAddr uintptr
}

// releaseBlock is the kernel's default fault_around_bytes.
const releaseBlock = 64 << 10

var osPage = uintptr(os.Getpagesize())

func newReleaser(db *DB, tx *bolt.Tx) *releaser {
	lo := db.bolt.Info().Data
	return &releaser{lo: lo, hi: lo + uintptr(tx.Size())}
}

// touch notes the block b begins in, if b is inside the mapping.
func (r *releaser) touch(b []byte) {
	if r == nil || len(b) == 0 {
		return
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	a := uintptr(p)
	if a < r.lo || a >= r.hi {
		return
	}
	if r.base == nil {
		r.base, r.baseAddr = p, a
	}
	blk := a &^ (releaseBlock - 1)
	if n := len(r.blocks); n > 0 && r.blocks[n-1] == blk {
		return
	}
	r.blocks = append(r.blocks, blk)
}

// release drops the blocks noted, a run of adjacent blocks at a time, each
// clipped to the mapping.
func (r *releaser) release() {
	if r == nil || len(r.blocks) == 0 {
		return
	}
	slices.Sort(r.blocks)
	r.blocks = slices.Compact(r.blocks)
	end := (r.hi + osPage - 1) &^ (osPage - 1)
	for i := 0; i < len(r.blocks); {
		j := i + 1
		for j < len(r.blocks) && r.blocks[j] == r.blocks[j-1]+releaseBlock {
			j++
		}
		from := max(r.blocks[i], r.lo)
		to := min(r.blocks[j-1]+releaseBlock, end)
		// An error (the kernel refusing) only leaves the pages resident.
		_ = syscall.Madvise(unsafe.Slice((*byte)(unsafe.Add(r.base, int(from)-int(r.baseAddr))), to-from), syscall.MADV_DONTNEED)
		i = j
	}
	r.blocks = r.blocks[:0]
}
