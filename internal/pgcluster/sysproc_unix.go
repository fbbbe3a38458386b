//go:build unix && !linux

package pgcluster

import "syscall"

// sysProcAttr runs the child as acct when it is non-nil, in a process group
// of its own so that a terminal's Ctrl-C reaches only the program that
// started it, which stops the server last.
func sysProcAttr(acct *account) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if acct != nil {
		attr.Credential = &syscall.Credential{Uid: acct.uid, Gid: acct.gid}
	}
	return attr
}
