//go:build !unix

package pgcluster

import (
	"io/fs"
	"os"
	"syscall"
)

// sigQuit is the closest portable equivalent of SIGQUIT.
var sigQuit = os.Kill

// sysProcAttr is a no-op: switching accounts is only supported on Unix.
func sysProcAttr(*account) *syscall.SysProcAttr { return nil }

// canSearch is never consulted off Unix, where root does not exist.
func canSearch(fs.FileInfo, *account) bool { return true }
