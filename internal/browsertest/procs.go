package browsertest

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// envTag is the environment variable that marks each process of one
// test's browser: Start gives it to the browser, whose child processes (the
// zygotes, the renderers, the crash handler) inherit it, even those that
// outlive the browser and lose their parent.
const envTag = "HARDCAP_BROWSERTEST_TAG"

// Processes returns the ids of the live processes of the browser whose tag
// is tag (Tab.Tag). It reads /proc; where there is none it finds nothing.
func Processes(tag string) []int {
	want := []byte(envTag + "=" + tag)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		environ, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || zombie(e.Name()) {
			continue
		}
		for v := range bytes.SplitSeq(environ, []byte{0}) {
			if bytes.Equal(v, want) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// zombie reports whether the process has exited and only waits to be reaped:
// it holds no resources, and its parent (maybe not us) reaps it.
func zombie(pid string) bool {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command's name in parentheses, which may itself
	// hold spaces or parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X'
}

// waitGone waits up to limit for the processes of the browser tagged tag
// to end. It kills those still alive then and returns their ids.
func waitGone(tag string, limit time.Duration) []int {
	deadline := time.Now().Add(limit)
	for {
		left := Processes(tag)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}
