//go:build linux

package pgcluster

import "syscall"

// sysProcAttr runs the child as acct (when non-nil) in a process group of its
// own, and asks the kernel to send it SIGQUIT (PostgreSQL's immediate
// shutdown) if this process dies, so a crashed test binary does not leave a
// server running. The process group keeps a terminal's Ctrl-C, which goes to
// the whole foreground group, from stopping the server before the program
// that started it has shut down the work that uses it.
func sysProcAttr(acct *account) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if acct != nil {
		attr.Credential = &syscall.Credential{Uid: acct.uid, Gid: acct.gid}
	}
	return attr
}
