//go:build !unix

package remoterun

import "os/exec"

// setProcessGroup does nothing here: the process is killed alone.
func setProcessGroup(*exec.Cmd) {}

// killProcessGroup kills the command.
func killProcessGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}
