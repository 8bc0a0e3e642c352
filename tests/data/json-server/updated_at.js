// json-server middleware: stamps `updatedAt` (ISO 8601 UTC, milliseconds)
// on every record written with POST, PUT or PATCH, as a real API stamps its
// change time; a client cannot set it. The mdhub tests follow changes by it.
//
// A test that needs two writes with the same change time (a real API's
// clock ticks in milliseconds, and one tick can hold many writes) sends the
// time to stamp in the `X-Test-Now` header; it must be such a stamp.
const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

module.exports = (req, res, next) => {
  if (['POST', 'PUT', 'PATCH'].includes(req.method)) {
    if (req.body === null || typeof req.body !== 'object' || Array.isArray(req.body)) {
      res.status(400).jsonp({ error: 'the body must be a JSON object' });
      return;
    }
    const pinned = req.get('X-Test-Now');
    if (pinned !== undefined && !STAMP.test(pinned)) {
      res.status(400).jsonp({ error: 'X-Test-Now must be like 2024-05-01T10:00:00.123Z' });
      return;
    }
    req.body.updatedAt = pinned !== undefined ? pinned : new Date().toISOString();
  }
  next();
};
