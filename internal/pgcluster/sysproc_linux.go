//go:build linux

package pgcluster

import "syscall"

// sysProcAttr runs the child as acct (when non-nil) and asks the kernel to
// send it SIGQUIT (PostgreSQL's immediate shutdown) if this process dies, so
// a crashed test binary does not leave a server running.
func sysProcAttr(acct *account) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
	if acct != nil {
		attr.Credential = &syscall.Credential{Uid: acct.uid, Gid: acct.gid}
	}
	return attr
}
