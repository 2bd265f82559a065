// A service behind a load balancer (aws.UnikernelService's Network Load Balancer): which port its
// health check probes, and what a static address needs. The balancer forwards the declared ports
// and checks a TCP port, so both rules are about the ports the user declared. (No reason holds
// "; ": the SDK joins a refusal's problems with it.)
import type { Protocol } from "./ports";

/** A declared port with its protocol. */
export interface DeclaredPort {
  port: number;
  protocol: Protocol;
}

/** The TCP ports among `ports`, in order: the ones a TCP health check can probe. */
export function tcpPortsOf(ports: readonly DeclaredPort[]): number[] {
  return ports.filter((p) => p.protocol === "tcp").map((p) => p.port);
}

/**
 * Why `port` cannot be the health check's port (a reason for `healthCheck.port`), or undefined:
 * the balancer probes the service where it listens, so the port must be a declared TCP port.
 */
export function healthCheckPortProblem(
  port: number,
  ports: readonly DeclaredPort[],
): string | undefined {
  const tcp = tcpPortsOf(ports);
  if (tcp.includes(port)) return undefined;
  return tcp.length === 0
    ? `is ${port}, and no TCP port is declared: a health check probes a declared TCP port, so declare the service's TCP port in ports (e.g. ports: [${port}])`
    : `must be one of the declared TCP ports (${tcp.join(", ")}), not ${port}: declare it in ports, or check one of those`;
}

/**
 * Why the declared ports leave a balancer nothing to health-check (a reason for `healthCheck`),
 * or undefined: with ports declared, one must be TCP.
 */
export function healthCheckNeedProblem(ports: readonly DeclaredPort[]): string | undefined {
  if (ports.length === 0 || tcpPortsOf(ports).length > 0) return undefined;
  return "has no port to probe: the declared ports are all UDP, and the load balancer's health check connects over TCP, so declare a TCP port the service answers on in ports too";
}

/**
 * Why `staticIp` cannot be honoured (a reason for `staticIp`), or undefined: the static
 * addresses sit on the load balancer, which exists only in front of declared ports.
 */
export function staticIpProblem(
  staticIp: boolean,
  ports: readonly DeclaredPort[],
): string | undefined {
  if (!staticIp || ports.length > 0) return undefined;
  return "needs ports, and none is declared: the static addresses belong to the load balancer in front of the declared ports, so declare the service's ports (e.g. ports: [8080]) or leave staticIp out";
}

/** Why a port is declared twice (a reason for `ports[i]`), or undefined. */
export function duplicatePortProblem(
  index: number,
  ports: readonly DeclaredPort[],
): string | undefined {
  const { port, protocol } = ports[index];
  const first = ports.findIndex((p) => p.port === port && p.protocol === protocol);
  return first < index
    ? `is ${protocol} ${port} again (ports[${first}]): declare each port and protocol once`
    : undefined;
}
