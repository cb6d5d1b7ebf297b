/*
 * min_responder: the plain FastCGI ceiling for `make bench`.
 *
 * An FCGX_Accept_r loop that answers every request at once and does
 * nothing else: no parsing, no allocation, no database. In the
 * responder role it sends a three-byte 200; in the authorizer role
 * (lighttpd "mode" => "authorizer") it grants with Status 200 and one
 * Variable-REMOTE_USER, as authorize.fcgi does. Whatever a real
 * program adds on top of this is its own work.
 */
#include <fastcgi.h>
#include <fcgiapp.h>

int
main(void)
{
	FCGX_Request	 r;

	if (FCGX_Init() != 0 || FCGX_InitRequest(&r, 0, 0) != 0)
		return 1;
	while (FCGX_Accept_r(&r) >= 0) {
		if (r.role == FCGI_AUTHORIZER)
			FCGX_PutS("Status: 200 OK\r\n"
			    "Variable-REMOTE_USER: bench\r\n\r\n", r.out);
		else
			FCGX_PutS("Status: 200 OK\r\n"
			    "Content-Type: text/plain\r\n\r\nok\n", r.out);
		FCGX_Finish_r(&r);
	}
	FCGX_Free(&r, 1);
	return 0;
}
