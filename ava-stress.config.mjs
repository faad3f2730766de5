// The stress tests run on their own, after the main suite (`npm test` runs both):
// 200 concurrent flows with resets mid-stream saturate a 2-core machine by design,
// and would starve the timing of whatever test file ran beside them.
export default {
  files: ['dist/test/chaos.test.js'],
  timeout: '5m',
  workerThreads: false,
};
