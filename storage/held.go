package storage

import (
	"errors"
	"io/fs"
)

// Held reports whether path is the database of a running hardcap: a server
// holds its lock file (<path>.lock, see Open) or bbolt's own exclusive lock
// on the file itself, which a server of any version takes. A missing file
// is not held. `hardcap db backup` asks before it renames a copy over a
// file, since renaming over a database a server has open loses everything
// the server writes after it. Where the system has no flock, Held is
// always false.
func Held(path string) (bool, error) {
	for _, p := range []string{path + ".lock", path} {
		// A shared lock is refused only while someone holds it exclusive:
		// a server, not a reader such as `hardcap db check`.
		l, err := lockFile(p, false, 0)
		switch {
		case errors.Is(err, ErrLocked):
			return true, nil
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return false, err
		}
		l.release()
	}
	return false, nil
}
