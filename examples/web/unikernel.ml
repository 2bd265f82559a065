open Lwt.Infix
open Cmdliner

let port =
  let doc = Arg.info ~doc:"The TCP port to serve HTTP on." [ "port" ] in
  Mirage_runtime.register_arg Arg.(value & opt int 8080 doc)

let body = "Hello from a MirageOS unikernel\n"

let response =
  Printf.sprintf
    "HTTP/1.1 200 OK\r\n\
     Content-Type: text/plain\r\n\
     Content-Length: %d\r\n\
     Connection: close\r\n\
     \r\n\
     %s"
    (String.length body) body

module Main (S : Tcpip.Stack.V4V6) = struct
  (* Every request gets the same answer, so the request itself is not parsed: one read, one
     response, close. *)
  let serve flow =
    S.TCP.read flow >>= function
    | Ok `Eof -> S.TCP.close flow
    | Error e ->
        Logs.warn (fun f -> f "read: %a" S.TCP.pp_error e);
        S.TCP.close flow
    | Ok (`Data _request) ->
        S.TCP.write flow (Cstruct.of_string response) >>= fun result ->
        (match result with
        | Ok () -> ()
        | Error e -> Logs.warn (fun f -> f "write: %a" S.TCP.pp_write_error e));
        S.TCP.close flow

  let start s =
    let port = port () in
    S.TCP.listen (S.tcp s) ~port serve;
    Logs.info (fun f -> f "serving HTTP on port %d" port);
    S.listen s
end
