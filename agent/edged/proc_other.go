//go:build !unix

package edged

import (
	"os"
	"os/exec"
)

// setProcessGroup does nothing here: the process is killed alone.
func setProcessGroup(*exec.Cmd) {}

// killProcessGroup kills the command.
func killProcessGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}

// exitCode is the process's exit status.
func exitCode(ps *os.ProcessState) int { return ps.ExitCode() }

// shellArgv runs a command string with the system shell.
func shellArgv(command string) []string { return []string{"cmd.exe", "/C", command} }
