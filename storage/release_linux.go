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
type releaser struct {
	lo, hi uintptr // the mapped file, as far as tx can read it
	pages  []unsafe.Pointer
}

var osPage = uintptr(os.Getpagesize())

func newReleaser(db *DB, tx *bolt.Tx) *releaser {
	lo := db.bolt.Info().Data
	return &releaser{lo: lo, hi: lo + uintptr(tx.Size())}
}

// touch notes the page b begins in, if b is inside the mapping.
func (r *releaser) touch(b []byte) {
	if r == nil || len(b) == 0 {
		return
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	a := uintptr(p)
	if a < r.lo || a >= r.hi {
		return
	}
	p = unsafe.Add(p, -int(a%osPage))
	if n := len(r.pages); n > 0 && r.pages[n-1] == p {
		return
	}
	r.pages = append(r.pages, p)
}

// release drops the pages noted, a run of adjacent pages at a time.
func (r *releaser) release() {
	if r == nil || len(r.pages) == 0 {
		return
	}
	slices.SortFunc(r.pages, func(a, b unsafe.Pointer) int {
		switch {
		case uintptr(a) < uintptr(b):
			return -1
		case uintptr(a) > uintptr(b):
			return 1
		}
		return 0
	})
	r.pages = slices.Compact(r.pages)
	for i := 0; i < len(r.pages); {
		j := i + 1
		for j < len(r.pages) && uintptr(r.pages[j]) == uintptr(r.pages[j-1])+osPage {
			j++
		}
		// An error (the kernel refusing) only leaves the pages resident.
		_ = syscall.Madvise(unsafe.Slice((*byte)(r.pages[i]), uintptr(j-i)*osPage), syscall.MADV_DONTNEED)
		i = j
	}
	r.pages = r.pages[:0]
}
