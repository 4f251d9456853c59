//go:build unix

package storage

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// fileLock is an flock on <db>.lock, taken before the database file is
// read at all: the checks Open runs before bbolt opens the file must not
// read a file another hardcap is writing. The lock file is never removed,
// since removing a lock file races with the next taker.
type fileLock struct{ f *os.File }

// lockFile takes the lock, exclusive or shared, retrying until timeout.
// A shared lock (a reader such as Check) does not create the lock file: no
// file means no server holds it, and a check of a backup leaves no litter.
func lockFile(path string, exclusive bool, timeout time.Duration) (*fileLock, error) {
	var f *os.File
	var err error
	if exclusive {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	} else if f, err = os.Open(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage: lock: %w", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
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
