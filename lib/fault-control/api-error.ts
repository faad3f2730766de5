/** An error answer of Toxiproxy's API: `{"error": "...", "status": N}` with that HTTP status. */
export class ApiError extends Error {
  readonly status: number;

  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }

  toJSON(): { error: string; status: number } {
    return { error: this.message, status: this.status };
  }
}

// Toxiproxy's own messages, so clients that match on them keep working.
export const badRequestBody = (detail: string): ApiError => new ApiError(`bad request body: ${detail}`, 400);
export const missingField = (field: string): ApiError => new ApiError(`missing required field: ${field}`, 400);
export const PROXY_NOT_FOUND = (): ApiError => new ApiError('proxy not found', 404);
export const PROXY_EXISTS = (): ApiError => new ApiError('proxy already exists', 409);
export const INVALID_STREAM = (): ApiError =>
  new ApiError('stream was invalid, can be either upstream or downstream', 400);
export const INVALID_TOXIC_TYPE = (): ApiError => new ApiError('invalid toxic type', 400);
export const TOXIC_EXISTS = (): ApiError => new ApiError('toxic already exists', 409);
export const TOXIC_NOT_FOUND = (): ApiError => new ApiError('toxic not found', 404);
