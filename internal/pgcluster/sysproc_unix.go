//go:build unix && !linux

package pgcluster

import "syscall"

// sysProcAttr runs the child as acct when it is non-nil.
func sysProcAttr(acct *account) *syscall.SysProcAttr {
	if acct == nil {
		return nil
	}
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: acct.uid, Gid: acct.gid}}
}
