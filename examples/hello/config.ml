(* mirage >= 4.9.0 & < 4.12.0 *)
open Mirage

(* No devices: since mirage 4.9 sleeping and clocks are plain libraries (Mirage_sleep, Mirage_ptime),
   not functor arguments. *)
let main = main "Unikernel" job ~packages:[ package "duration" ]
let () = register "hello" [ main ]
