//go:build unix

package storage

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// fileLock is an flock. A server takes it exclusive on <db>.lock before
// the database file is read at all: the checks Open runs before bbolt
// opens the file must not read a file another hardcap is writing. The lock
// file is never removed, since removing a lock file races with the next
// taker.
type fileLock struct{ f *os.File }

// lockFile takes the lock, exclusive or shared, retrying until timeout.
// A shared lock (a reader such as Check or Salvage) is taken on the
// database file itself, where bbolt takes its own: that keeps out a
// server of any hardcap version, and a check of a backup leaves no lock
// file behind.
func lockFile(path string, exclusive bool, timeout time.Duration) (*fileLock, error) {
	var f *os.File
	var err error
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
		f, err = os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	} else {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: lock: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return &fileLock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("storage: lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, ErrLocked
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// release drops the lock.
func (l *fileLock) release() {
	if l != nil && l.f != nil {
		_ = l.f.Close()
	}
}
