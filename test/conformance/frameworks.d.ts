// Express 4 and Koa 2 under npm aliases, for the conformance table's previous-majors run. The
// reference apps are typed against the current majors; these aliases stand in for them at run time.
declare module 'express4' {
  import express from 'express';
  export default express;
}
declare module 'koa2' {
  import Koa from 'koa';
  export default Koa;
}
