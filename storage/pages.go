package storage

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
)

// This file reads bbolt's on-disk format (go.etcd.io/bbolt/internal/common:
// page.go, meta.go, bucket.go) with ReadAt and checks every offset against
// the page it lies in. bbolt itself reads the file through an mmap and
// trusts it: a truncated file or an overwritten page makes it fault
// (SIGBUS, SIGSEGV) or panic, sometimes in a goroutine of its own (tx.Check)
// where no recover can reach. So Open walks the file with this reader first
// and gives bbolt only a file whose tree is sound, and Salvage copies a
// damaged file's readable entries without bbolt touching it at all.

// Layout constants of bbolt's file format, version 2.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	elemSize       = 16 // leaf: flags, pos, ksize, vsize u32; branch: pos, ksize u32, pgid u64
	metaSize       = 64 // magic, version, pageSize, flags u32; root, sequence, freelist, pgid, txid, checksum u64
	bucketHdrSize  = 16 // root pgid u64, sequence u64

	branchPage   = 0x01
	leafPage     = 0x02
	metaPage     = 0x04
	freelistPage = 0x10
	bucketLeaf   = 0x01

	noFreelist = ^uint64(0)
	// maxDepth bounds the recursion of a tree walk; a sound bbolt tree of
	// a few GB is less than ten levels deep, so deeper means a loop.
	maxDepth = 64
	// maxProblems bounds what a walk reports; the first few say enough.
	maxProblems = 20
)

// bbolt stores integers in the machine's byte order; hardcap runs on
// little-endian machines (amd64, arm64).
var le = binary.LittleEndian

// fileMeta is the part of a bbolt meta page the walk needs.
type fileMeta struct {
	pageSize uint32
	root     uint64 // root bucket's page
	freelist uint64
	hwm      uint64 // pages in use: the file must hold at least hwm pages
	txid     uint64
}

// readMeta reads both meta pages and returns the newer. Both must be sound:
// bbolt's Tx.Check asserts that each meta page names itself (page 0, page 1)
// and panics otherwise, in a goroutine of its own where no recover reaches;
// and with one meta page bad bbolt silently uses the other, whose tree is
// one commit older, losing the last commit. So a bad meta page is damage.
func readMeta(r io.ReaderAt, size int64) (fileMeta, error) {
	metas, err := readMetas(r, size)
	if err != nil {
		return fileMeta{}, err
	}
	return metas[0], nil
}

// readMetas returns the valid meta pages, newest first. The older one
// points at the tree of the previous transaction, which bbolt's
// copy-on-write leaves in place until the next commit reuses its pages.
// The error says what is wrong when either page is not sound; the pages it
// could read are returned with it, so that Salvage can still use one.
func readMetas(r io.ReaderAt, size int64) ([]fileMeta, error) {
	m0, err0 := metaAt(r, 0, 0)
	if err0 == nil {
		m1, err1 := metaAt(r, int64(m0.pageSize), 1)
		switch {
		case err1 == nil && m1.pageSize != m0.pageSize:
			return []fileMeta{m0}, fmt.Errorf("meta page 1 is overwritten: page size %d, meta page 0 says %d", m1.pageSize, m0.pageSize)
		case err1 != nil:
			return []fileMeta{m0}, fmt.Errorf("meta page 1 is overwritten: %v", err1)
		case m1.txid > m0.txid:
			return []fileMeta{m1, m0}, nil
		}
		return []fileMeta{m0, m1}, nil
	}
	// Page 0 is unreadable: find page 1 at the usual page sizes.
	for _, ps := range []int64{4096, 16384, 65536, 8192, 32768, 2048, 1024} {
		if m1, err := metaAt(r, ps, 1); err == nil && int64(m1.pageSize) == ps {
			return []fileMeta{m1}, fmt.Errorf("meta page 0 is overwritten: %v", err0)
		}
	}
	if size < 2*1024 {
		return nil, fmt.Errorf("the file is %d bytes, too short for a bbolt database", size)
	}
	return nil, fmt.Errorf("neither header (meta page) is valid: %v", err0)
}

// metaAt reads meta page id at off and checks what bbolt checks or asserts
// of it: its header names page id with the meta flag (bbolt's
// Page.FastCheck), and its magic, version and checksum are right
// (Meta.Validate). The checksum covers only the meta fields, not the page
// header, so both are needed.
func metaAt(r io.ReaderAt, off int64, id uint64) (fileMeta, error) {
	var b [pageHeaderSize + metaSize]byte
	if _, err := r.ReadAt(b[:], off); err != nil {
		return fileMeta{}, fmt.Errorf("reading the meta page at %d: %w", off, err)
	}
	if got, flags := le.Uint64(b[0:]), le.Uint16(b[8:]); got != id || flags != metaPage {
		return fileMeta{}, fmt.Errorf("its header says page %d with flags %#x, want page %d, a meta page", got, flags, id)
	}
	m := b[pageHeaderSize:]
	if le.Uint32(m[0:]) != boltMagic {
		return fileMeta{}, fmt.Errorf("meta page at %d: not a bbolt file (bad magic)", off)
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return fileMeta{}, fmt.Errorf("meta page at %d: bbolt format %d, want %d", off, v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return fileMeta{}, fmt.Errorf("meta page at %d: checksum mismatch", off)
	}
	fm := fileMeta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]), hwm: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}
	if fm.pageSize < 1024 || fm.pageSize > 1<<20 || fm.pageSize&(fm.pageSize-1) != 0 {
		return fileMeta{}, fmt.Errorf("meta page at %d: page size %d", off, fm.pageSize)
	}
	return fm, nil
}

// walker reads the pages of one bbolt file.
type walker struct {
	r        io.ReaderAt
	size     int64
	meta     fileMeta
	seen     map[uint64]bool
	problems []string
	more     int // problems not kept
	collect  bool
}

func (w *walker) problem(format string, args ...any) {
	if len(w.problems) >= maxProblems {
		w.more++
		return
	}
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
}

// page reads page id with its overflow pages after checking its header.
func (w *walker) page(id uint64) ([]byte, error) {
	ps := uint64(w.meta.pageSize)
	if id < 2 || id >= w.meta.hwm {
		return nil, fmt.Errorf("page %d is outside the file's %d pages", id, w.meta.hwm)
	}
	var hdr [pageHeaderSize]byte
	if _, err := w.r.ReadAt(hdr[:], int64(id*ps)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	if got := le.Uint64(hdr[0:]); got != id {
		return nil, fmt.Errorf("page %d: its header says page %d (overwritten?)", id, got)
	}
	overflow := uint64(le.Uint32(hdr[12:]))
	if id+overflow >= w.meta.hwm {
		return nil, fmt.Errorf("page %d: %d overflow pages run past the file's %d pages", id, overflow, w.meta.hwm)
	}
	// Checked before allocating: an overwritten header can claim any size.
	if end := (id + overflow + 1) * ps; end > uint64(w.size) {
		return nil, fmt.Errorf("page %d: runs past the end of the file (%d bytes)", id, w.size)
	}
	for i := id; i <= id+overflow; i++ {
		if w.seen[i] {
			return nil, fmt.Errorf("page %d is referenced twice", i)
		}
		w.seen[i] = true
	}
	buf := make([]byte, (overflow+1)*ps)
	if _, err := w.r.ReadAt(buf, int64(id*ps)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return buf, nil
}

// element returns the byte range [pos, pos+n) of buf relative to an
// element at off, or false when it does not fit.
func span(buf []byte, off int, pos, n uint32) ([]byte, bool) {
	start := uint64(off) + uint64(pos)
	end := start + uint64(n)
	if end > uint64(len(buf)) {
		return nil, false
	}
	return buf[start:end], true
}

// leafEntry is one key/value of a leaf page.
type leafEntry struct {
	bucket bool
	key    []byte
	value  []byte
}

// parseLeaf returns the elements of a leaf page held in buf (a page or an
// inline bucket's page).
func parseLeaf(buf []byte) ([]leafEntry, error) {
	if len(buf) < pageHeaderSize {
		return nil, fmt.Errorf("leaf page of %d bytes", len(buf))
	}
	count := int(le.Uint16(buf[10:]))
	if pageHeaderSize+count*elemSize > len(buf) {
		return nil, fmt.Errorf("leaf page claims %d elements, more than fit", count)
	}
	out := make([]leafEntry, 0, count)
	for i := range count {
		off := pageHeaderSize + i*elemSize
		flags, pos, ks, vs := le.Uint32(buf[off:]), le.Uint32(buf[off+4:]), le.Uint32(buf[off+8:]), le.Uint32(buf[off+12:])
		k, ok := span(buf, off, pos, ks)
		if !ok {
			return out, fmt.Errorf("element %d: key runs past the page", i)
		}
		v, ok := span(buf, off, pos+ks, vs)
		if !ok || pos+ks < pos {
			return out, fmt.Errorf("element %d: value runs past the page", i)
		}
		out = append(out, leafEntry{bucket: flags&bucketLeaf != 0, key: k, value: v})
	}
	return out, nil
}

// walkTree calls fn for every leaf element of the tree rooted at page id.
// A damaged page is reported and skipped, and the walk goes on with its
// siblings, so a reader gets everything outside the damaged subtree.
func (w *walker) walkTree(name string, id uint64, depth int, fn func(leafEntry)) {
	if depth > maxDepth {
		w.problem("%s: the tree is deeper than %d levels (a loop)", name, maxDepth)
		return
	}
	buf, err := w.page(id)
	if err != nil {
		w.problem("%s: %v", name, err)
		return
	}
	w.walkPage(name, id, buf, depth, fn)
}

func (w *walker) walkPage(name string, id uint64, buf []byte, depth int, fn func(leafEntry)) {
	switch flags := le.Uint16(buf[8:]); flags {
	case leafPage:
		entries, err := parseLeaf(buf)
		for _, e := range entries {
			fn(e)
		}
		if err != nil {
			w.problem("%s: page %d: %v", name, id, err)
		}
	case branchPage:
		count := int(le.Uint16(buf[10:]))
		if pageHeaderSize+count*elemSize > len(buf) {
			w.problem("%s: page %d: branch claims %d elements, more than fit", name, id, count)
			return
		}
		for i := range count {
			off := pageHeaderSize + i*elemSize
			if _, ok := span(buf, off, le.Uint32(buf[off:]), le.Uint32(buf[off+4:])); !ok {
				w.problem("%s: page %d: element %d: key runs past the page", name, id, i)
				continue
			}
			w.walkTree(name, le.Uint64(buf[off+8:]), depth+1, fn)
		}
	default:
		w.problem("%s: page %d: not a tree page (flags %#x)", name, id, flags)
	}
}

// fileBucket is a top-level bucket as the walk found it.
type fileBucket struct {
	name     string
	sequence uint64
	entries  []leafEntry
	count    int
	// damaged says the walk skipped some of its pages or elements.
	damaged bool
}

// walkFile checks the header, the freelist and every tree page of a bbolt
// file and returns its top-level buckets with their entries. Problems are
// in w.problems; the buckets hold what was readable.
//
// With collect false the entries are only checked, not kept: Open checks
// the whole file without holding it in memory.
func walkFile(r io.ReaderAt, size int64, collect bool) (*walker, []fileBucket, error) {
	meta, err := readMeta(r, size)
	if err != nil {
		return nil, nil, err
	}
	w, buckets := walkFrom(r, size, meta, collect)
	return w, buckets, nil
}

// walkFrom walks the tree one meta page points at.
func walkFrom(r io.ReaderAt, size int64, meta fileMeta, collect bool) (*walker, []fileBucket) {
	w := &walker{r: r, size: size, meta: meta, seen: map[uint64]bool{0: true, 1: true}, collect: collect}
	if need := int64(meta.hwm) * int64(meta.pageSize); size < need {
		w.problem("the file is %d bytes but its header says it holds %d pages (%d bytes): it was truncated", size, meta.hwm, need)
	}
	if meta.freelist != noFreelist {
		w.checkFreelist()
	}
	var buckets []fileBucket
	w.walkTree("root", meta.root, 0, func(e leafEntry) {
		if !e.bucket {
			w.problem("root: a plain key %q where only buckets belong", truncate(e.key))
			return
		}
		buckets = append(buckets, w.readBucket(string(e.key), e.value))
	})
	return w, buckets
}

func (w *walker) checkFreelist() {
	buf, err := w.page(w.meta.freelist)
	if err != nil {
		w.problem("freelist: %v", err)
		return
	}
	if flags := le.Uint16(buf[8:]); flags != freelistPage {
		w.problem("freelist: page %d is not a freelist page (flags %#x)", w.meta.freelist, flags)
		return
	}
	count, start := uint64(le.Uint16(buf[10:])), uint64(pageHeaderSize)
	if count == 0xFFFF {
		// bbolt's marker for a count that does not fit 16 bits: the first
		// element holds it.
		count, start = le.Uint64(buf[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > uint64(len(buf)) || start+count*8 > uint64(len(buf)) {
		w.problem("freelist: page %d claims %d free pages, more than fit", w.meta.freelist, count)
		return
	}
	free := make(map[uint64]bool, count)
	for i := range count {
		id := le.Uint64(buf[start+i*8:])
		if id < 2 || id >= w.meta.hwm {
			w.problem("freelist: free page %d is outside the file's %d pages", id, w.meta.hwm)
			return
		}
		// bbolt's map freelist counts a page listed twice twice and then
		// hands it out twice.
		if free[id] {
			w.problem("freelist: page %d is listed twice", id)
			return
		}
		free[id] = true
	}
}

// readBucket reads a top-level bucket from its header value in the root.
func (w *walker) readBucket(name string, hdr []byte) fileBucket {
	b := fileBucket{name: name}
	if len(hdr) < bucketHdrSize {
		w.problem("%s: bucket header of %d bytes", name, len(hdr))
		b.damaged = true
		return b
	}
	before := len(w.problems) + w.more
	b.sequence = le.Uint64(hdr[8:])
	collect := func(e leafEntry) {
		if e.bucket {
			w.problem("%s: a nested bucket %q, which hardcap never writes", name, truncate(e.key))
			return
		}
		b.count++
		if w.collect {
			b.entries = append(b.entries, leafEntry{key: slices.Clone(e.key), value: slices.Clone(e.value)})
		}
	}
	if root := le.Uint64(hdr[0:]); root != 0 {
		w.walkTree(name, root, 1, collect)
	} else {
		// An inline bucket: its leaf page follows the header.
		inline := hdr[bucketHdrSize:]
		if len(inline) < pageHeaderSize || le.Uint16(inline[8:]) != leafPage {
			w.problem("%s: inline bucket is not a leaf page", name)
		} else {
			entries, err := parseLeaf(inline)
			for _, e := range entries {
				collect(e)
			}
			if err != nil {
				w.problem("%s: inline bucket: %v", name, err)
			}
		}
	}
	b.damaged = len(w.problems)+w.more > before
	return b
}

// truncate shortens a key for a message: keys can be long and need not be
// text.
func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// summary is the walk's problems in one line: the first, and how many more.
func (w *walker) summary() string {
	if len(w.problems) == 0 {
		return ""
	}
	s := w.problems[0]
	if n := len(w.problems) - 1 + w.more; n > 0 {
		s += fmt.Sprintf(" (and %d more problems)", n)
	}
	return s
}
