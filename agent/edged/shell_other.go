//go:build !unix

package edged

// shellArgv runs a command string with the system shell.
func shellArgv(command string) []string { return []string{"cmd.exe", "/C", command} }
