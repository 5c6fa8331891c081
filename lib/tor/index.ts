export { TorTransport, type TorTransportOptions, type TorStatus } from "./tor-transport";
export { TorControl, TorControlError, parseBootstrapPhase, type BootstrapPhase, type ControlReply } from "./control";
export { launchTor, stopLaunchedTor, type LaunchOptions, type LaunchedTor } from "./launch";
