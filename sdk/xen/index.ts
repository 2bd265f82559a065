// Xen hosts reached over SSH: MirageOS unikernels as PVH domains, managed with xl.
export { Domain, type DomainArgs, type DomainConnection } from "./domain";
