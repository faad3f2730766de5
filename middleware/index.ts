// The middleware library: `import { … } from 'rxredirect/middleware'`.
export { both, compose, downstream, upstream } from '../lib/compose';
