//go:build !unix

package procgroup

import (
	"os"
	"os/exec"
)

// setGroup does nothing here: the process is killed alone.
func setGroup(*exec.Cmd) {}

// killGroup kills the command.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}

// status reads how the process ended.
func status(ps *os.ProcessState) Status { return Status{Code: ps.ExitCode()} }
