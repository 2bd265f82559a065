(* mirage >= 4.10.5 & < 4.12.0 *)
open Mirage

(* One network device: GCE always attaches a NIC, and a Solo5 unikernel that does not declare it
   aborts at boot. On Solo5 targets the device is named `service`; DHCP is the default. *)
let stack = generic_stackv4v6 default_network
let main = main "Unikernel.Main" (stackv4v6 @-> job)
let () = register "web" [ main $ stack ]
