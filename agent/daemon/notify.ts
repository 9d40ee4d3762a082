// systemd readiness (sd_notify): "READY=1" once the first reconcile has finished, "STOPPING=1" on
// the way out, "STATUS=..." for `systemctl status`. Only when started by systemd with
// Type=notify ($NOTIFY_SOCKET set). Sent from tenetd's own process by the native addon (see
// native/src/sd_notify.cc for why not the systemd-notify binary).

export type Notifier = (state: string) => void;

export async function systemdNotifier(
  env: NodeJS.ProcessEnv = process.env,
): Promise<Notifier | undefined> {
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return undefined;
  const { native } = await import('../bpf/native.js');
  return (state) => native.sdNotify(socket, state);
}
