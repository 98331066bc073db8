/// The release of iop: `iop --version`, `iop-node --version` and the board package (cross/package) all read it here.
public let iopVersion = "0.4.0"
