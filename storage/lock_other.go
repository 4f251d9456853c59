//go:build !unix

package storage

import "time"

// fileLock is a no-op where flock is missing; bbolt's own lock on the
// database file still keeps a second writer out.
type fileLock struct{}

func lockFile(string, bool, time.Duration) (*fileLock, error) { return &fileLock{}, nil }

func (l *fileLock) release() {}
