/*
 * dingauth login page: embeds DingTalk's QR code and finishes the sign-in.
 *
 * Everything comes from data attributes on #dingauth-login, written
 * (escaped) by login.fcgi:
 *   data-flow           sns | sns_bycode | oauth2
 *   data-authorize-url  the authorization URL with this attempt's state
 *   data-frame-origin   origin of DINGTALK_LOGIN_URL: the only origin whose
 *                       messages are believed
 *   data-redirect-uri   our /exchange address (oauth2)
 *   data-client-id      AppKey (oauth2)
 *   data-state          this attempt's state (oauth2)
 *
 * sns flows (ddLogin.js): the QR frame posts the loginTmpCode to this window;
 * the top window then goes to authorize-url + "&loginTmpCode=" + code, which
 * DingTalk answers with a redirect to /exchange?code=...&state=....
 * oauth2 (DTFrameLogin): the script hands us the authCode and state (also
 * inside its redirectUrl); we go with them to our own /exchange only.
 */
(function () {
	"use strict";

	var root = document.getElementById("dingauth-login");
	if (!root)
		return;
	var flow = root.getAttribute("data-flow");
	var authorizeUrl = root.getAttribute("data-authorize-url");
	var frameOrigin = root.getAttribute("data-frame-origin");
	var redirectUri = root.getAttribute("data-redirect-uri");
	var status = document.getElementById("qr-status");
	var progress = document.getElementById("dingauth-progress");
	var going = false;

	/* The page's own words, in its language (data-msg-*). */
	function msg(name) {
		return root.getAttribute("data-msg-" + name) || "";
	}

	function say(text) {
		status.textContent = text;
	}

	function noFrame(text) {
		root.className += " no-frame";
		say(text);
	}

	function go(url) {
		if (going)
			return;
		going = true;
		/* DingTalk may be slow: show that something is happening. */
		root.className += " going";
		if (progress)
			progress.hidden = false;
		window.location.assign(url);
	}

	/* A query parameter of url, or null. */
	function param(url, name) {
		try {
			return new URL(String(url), window.location.href)
			    .searchParams.get(name);
		} catch (e) {
			return null;
		}
	}

	function frameWindow() {
		var frame = document.querySelector("#login_container iframe");
		return frame ? frame.contentWindow : null;
	}

	function startSns() {
		if (typeof window.DDLogin !== "function") {
			noFrame(msg("noframe"));
			return;
		}
		window.addEventListener("message", function (event) {
			var code = event.data;

			/* Only DingTalk's own frame may hand us a code. */
			if (event.origin !== frameOrigin)
				return;
			if (frameWindow() !== null &&
			    event.source !== frameWindow())
				return;
			if (typeof code !== "string" || code.length === 0 ||
			    code.length > 512 || /[\s]/.test(code))
				return;
			go(authorizeUrl + "&loginTmpCode=" +
			    encodeURIComponent(code));
		});
		window.DDLogin({
			id: "login_container",
			goto: encodeURIComponent(authorizeUrl),
			style: "border:none;background-color:#FFFFFF;",
			width: "365",
			height: "400"
		});
	}

	function startOauth2() {
		if (typeof window.DTFrameLogin !== "function") {
			noFrame(msg("noframe"));
			return;
		}
		window.DTFrameLogin({
			id: "login_container",
			width: 300,
			height: 300
		}, {
			redirect_uri: encodeURIComponent(redirectUri),
			client_id: root.getAttribute("data-client-id"),
			scope: "openid",
			response_type: "code",
			state: root.getAttribute("data-state"),
			prompt: "consent"
		}, function (result) {
			/*
			 * Take the code and state, wherever DingTalk put them
			 * (its redirectUrl may spell our address differently),
			 * and go to our own exchange only.
			 */
			var url = result && result.redirectUrl;
			var code = (result && result.authCode) ||
			    param(url, "authCode") || param(url, "code");
			var state = (result && result.state) || param(url, "state");

			if (typeof code !== "string" || code.length === 0 ||
			    code.length > 512 || /[\s]/.test(code) ||
			    typeof state !== "string" || state.length === 0)
				return;
			go(redirectUri + "?authCode=" + encodeURIComponent(code) +
			    "&state=" + encodeURIComponent(state));
		}, function (message) {
			say(msg("failed"));
		});
	}

	try {
		if (flow === "oauth2")
			startOauth2();
		else
			startSns();
	} catch (e) {
		noFrame(msg("noframe"));
	}
})();
