open Lwt.Infix
open Cmdliner

(* A boot-time argument: `--hello=TEXT` on the kernel command line (DiskImage bootArgs). *)
let hello =
  let doc = Arg.info ~doc:"What to say." [ "hello" ] in
  Mirage_runtime.register_arg Arg.(value & opt string "Hello, World" doc)

let start () =
  let rec loop = function
    | 0 -> Lwt.return_unit
    | n ->
        Logs.info (fun f -> f "%s" (hello ()));
        Mirage_sleep.ns (Duration.of_sec 1) >>= fun () -> loop (n - 1)
  in
  loop 4
