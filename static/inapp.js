/*
 * dingauth in-app page (免登): inside the DingTalk client, no QR code.
 * docs/dingtalk.md §i.1.
 *
 * DingTalk's JSAPI (DINGTALK_JSAPI_JS, loaded before this file) gives a
 * free-login code for the company:
 *   dd.ready(() => dd.runtime.permission.requestAuthCode({corpId,
 *       onSuccess: info => info.code, onFail: err => ...}))
 * and the page goes with it to our own exchange:
 *   <data-exchange>?flow=inapp&code=<code>&state=<data-state>
 *
 * Everything comes from data attributes on #dingauth-inapp, written
 * (escaped) by login.fcgi:
 *   data-start     auto: ask DingTalk at once; click: wait for the button
 *                  (after a sign-out, which would otherwise sign in again)
 *   data-corp-id   DINGTALK_CORP_ID
 *   data-exchange  our /exchange path
 *   data-state     this attempt's state
 *   data-msg-*     the page's words, in its language
 * If the JSAPI is missing, fails, is refused or never answers, the page
 * says so and shows the link to the normal sign-in page (?inapp=0).
 */
(function () {
	"use strict";

	var WAIT_MS = 15000;	/* no answer from DingTalk by then: say so */
	var root = document.getElementById("dingauth-inapp");
	if (!root)
		return;
	var status = document.getElementById("inapp-status");
	var progress = document.getElementById("dingauth-progress");
	var fallback = document.getElementById("inapp-fallback");
	var again = document.getElementById("inapp-again");
	var button = document.getElementById("dingauth-inapp-start");
	var done = false;
	var timer = null;

	function msg(name) {
		return root.getAttribute("data-msg-" + name) || "";
	}

	/* Stop waiting; say why, and offer the normal sign-in page. */
	function fail(text, detail) {
		if (done)
			return;
		done = true;
		if (timer !== null)
			window.clearTimeout(timer);
		root.className += " failed";
		progress.hidden = true;
		again.hidden = true;
		status.textContent = text;
		if (detail) {
			var small = document.createElement("small");
			small.id = "inapp-detail";
			small.textContent = " " + msg("detail") + " " + detail;
			status.appendChild(small);
		}
		fallback.hidden = false;
	}

	/* What DingTalk said when it failed, for the helpdesk: short text. */
	function reason(err) {
		var code, text;

		if (err === null || err === undefined)
			return "";
		if (typeof err !== "object")
			return String(err).slice(0, 120);
		code = err.errorCode !== undefined ? err.errorCode : err.error;
		text = err.errorMessage || err.message || "";
		return String(code === undefined ? "" : code + " ") +
		    String(text).slice(0, 120);
	}

	function go(code) {
		if (done)
			return;
		if (typeof code !== "string" || code.length === 0 ||
		    code.length > 512 || /[\s]/.test(code)) {
			fail(msg("failed"), "");
			return;
		}
		done = true;
		window.clearTimeout(timer);
		window.location.assign(root.getAttribute("data-exchange") +
		    "?flow=inapp&code=" + encodeURIComponent(code) +
		    "&state=" + encodeURIComponent(root.getAttribute("data-state")));
	}

	function ask() {
		var dd = window.dd;

		again.hidden = true;
		progress.hidden = false;
		if (!dd || !dd.runtime || !dd.runtime.permission ||
		    typeof dd.runtime.permission.requestAuthCode !== "function" ||
		    typeof dd.ready !== "function") {
			fail(msg("nojsapi"), "");
			return;
		}
		/* The JSAPI's own word: outside the client it cannot work. */
		if (dd.env && dd.env.platform === "notInDingTalk") {
			fail(msg("outside"), "");
			return;
		}
		timer = window.setTimeout(function () {
			fail(msg("timeout"), "");
		}, WAIT_MS);
		if (typeof dd.error === "function")
			dd.error(function (err) {
				fail(msg("failed"), reason(err));
			});
		dd.ready(function () {
			try {
				dd.runtime.permission.requestAuthCode({
					corpId: root.getAttribute("data-corp-id"),
					onSuccess: function (info) {
						go(info && info.code);
					},
					onFail: function (err) {
						fail(msg("failed"), reason(err));
					}
				});
			} catch (e) {
				fail(msg("failed"), reason(e));
			}
		});
	}

	if (root.getAttribute("data-start") === "click") {
		again.hidden = false;
		fallback.hidden = false;
		button.addEventListener("click", function () {
			fallback.hidden = true;
			ask();
		});
	} else
		ask();
})();
