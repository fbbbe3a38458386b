//go:build unix

package pgcluster

import (
	"io/fs"
	"syscall"
)

// sigQuit requests PostgreSQL's immediate shutdown.
var sigQuit = syscall.SIGQUIT

// canSearch reports whether acct may traverse the directory described by fi.
func canSearch(fi fs.FileInfo, acct *account) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true // cannot tell; let initdb report any problem
	}
	mode := fi.Mode().Perm()
	switch {
	case st.Uid == acct.uid:
		return mode&0o100 != 0
	case st.Gid == acct.gid:
		return mode&0o010 != 0
	default:
		return mode&0o001 != 0
	}
}
