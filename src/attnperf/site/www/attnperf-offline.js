/* attnperf: asv's pages from file:// (no web server, no network).
 *
 * asv's pages load their data (info.json, index.json, graphs/..., regressions.json)
 * with jQuery's $.ajax, which file:// forbids.  `attnperf site build` writes each of
 * those files a second time as attnperf-offline/<path>.js, a script that hands the
 * data to attnperfOfflineData(); this transport loads that script instead of
 * making the request.  Over http(s) it does nothing: asv's own requests are used.
 */
(function ($) {
  "use strict";
  if (!$ || window.location.protocol !== "file:") {
    return;
  }
  var loaded = {};
  var waiting = {};
  window.attnperfOfflineData = function (path, data) {
    loaded[path] = data;
    var callbacks = waiting[path] || [];
    delete waiting[path];
    callbacks.forEach(function (cb) { cb(true); });
  };
  $.ajaxTransport("+*", function (options) {
    var path = decodeURIComponent(options.url.split("#")[0].split("?")[0]);
    var script = null;
    return {
      send: function (headers, complete) {
        if (!/\.json$/.test(path)) {  // asv's "is the server up?" probe (swallow.ico)
          complete(200, "success", {text: ""});
          return;
        }
        var done = function (ok) {
          if (ok && loaded.hasOwnProperty(path)) {
            complete(200, "success", {json: loaded[path], text: JSON.stringify(loaded[path])});
          } else {
            complete(404, "not in the offline data: " + path);
          }
        };
        if (loaded.hasOwnProperty(path)) {
          setTimeout(function () { done(true); }, 0);
          return;
        }
        (waiting[path] = waiting[path] || []).push(done);
        script = document.createElement("script");
        script.src = "attnperf-offline/" + path.split("/").map(encodeURIComponent).join("/") + ".js";
        script.onerror = function () {
          var callbacks = waiting[path] || [];
          delete waiting[path];
          callbacks.forEach(function (cb) { cb(false); });
        };
        document.head.appendChild(script);
      },
      abort: function () {
        if (script && script.parentNode) {
          script.parentNode.removeChild(script);
        }
      }
    };
  });
})(window.jQuery);
