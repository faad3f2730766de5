// N-API face of the portable WFP logic (wfp-logic.h), compiled on every OS:
// the outcome objects the Windows functions return, and test-only exports
// that drive the negotiation with scripted ioctl replies, so the Linux test
// suite runs the exact code the Windows build uses.
#pragma once

#include <napi.h>

#include "wfp-logic.h"

namespace rxredirect {

// {status, bytes, error, errorName, reason, asks}
Napi::Object WfpOutcomeObject(Napi::Env env, const wfp::Outcome& outcome);

// {status, destination?, records?, context?, error, errorName, syscall, reason}
Napi::Object WfpRecordObject(Napi::Env env, const wfp::RecordOutcome& outcome);

// Test-only: wfpNegotiate(replies, maxBytes?) where replies is
// [{error, bytesReturned, fill?: Uint8Array}], one per ioctl call.
Napi::Value WfpNegotiate(const Napi::CallbackInfo& info);

// Test-only: wfpParseSockaddr(bytes) -> {family, address, port} | undefined.
Napi::Value WfpParseSockaddr(const Napi::CallbackInfo& info);

// Test-only: wfpBuildRecord(recordReplies, contextReplies, originalDstError, sockaddrBytes).
Napi::Value WfpBuildRecord(const Napi::CallbackInfo& info);

// Registers the test-only exports above (on every OS).
void RegisterWfpTestExports(Napi::Env env, Napi::Object exports);

}  // namespace rxredirect
