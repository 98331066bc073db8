// iop-node: the agent every board runs. One binary, two roles (see `usage`).
// It builds both as a normal host executable and in Embedded Swift for the
// boards (cross/build), so it uses only libc through CIOPSystem: no
// CommandLine, Foundation or untyped errors.
import CIOPSystem
import IOPCore
import IOPNet
import IOPNode
import IOPService
import IOPWire

if iop_argc() == 2 && String(cString: iop_argv()![1]!) == "--version" {
    print("iop-node " + iopVersion)
    exit(0)
}
if runBoardTool() { exit(0) }  // profile, probe: BoardTools.swift
guard let options = Options.fromProcess() else {
    print(usage)
    exit(iop_argc() > 1 ? 0 : 2)
}
if iop_catch_stop_signals() != 0 { Log.warning("cannot catch SIGTERM; a stop will not be clean") }
let context: Context
do { context = try Context() } catch { fail(error.message) }

switch options.role {
case "worker": runWorker(options, context: context)
case "leader": runLeader(options, context: context)
default: fail("unknown role '" + options.role + "' (expected worker or leader)\n" + usage)
}
