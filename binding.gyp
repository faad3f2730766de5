{
  "targets": [
    {
      "target_name": "rxredirect",
      "sources": ["native/addon.cc", "native/wfp-logic.cc", "native/wfp-napi.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "native/sys-error.cc",
            "native/sockaddr.cc",
            "native/socket-info.cc",
            "native/original-destination.cc",
            "native/transparent.cc",
            "native/marked-socket.cc",
            "native/capabilities.cc",
            "native/pipe-pool.cc",
            "native/splice-engine.cc",
            "native/splice-pump.cc",
            "native/splice-relay.cc",
            "native/acceptor.cc",
            "native/local-route.cc",
            "native/reuseport-listener.cc"
          ]
        }],
        ["OS=='win'", {
          "sources": [
            "native/win/win-error.cc",
            "native/win/wfp-query.cc",
            "native/win/wfp-engine.cc",
            "native/win/wfp-exports.cc"
          ],
          "libraries": ["-lws2_32"],
          "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } }
        }]
      ]
    }
  ]
}
