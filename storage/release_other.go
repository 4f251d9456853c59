//go:build !linux

package storage

import bolt "go.etcd.io/bbolt"

// releaser is a no-op where MADV_DONTNEED is not used: the pages an
// export visits stay resident until the kernel reclaims them.
type releaser struct{}

func newReleaser(*DB, *bolt.Tx) *releaser { return nil }
func (*releaser) touch([]byte)            {}
func (*releaser) release()                {}
